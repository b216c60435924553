from nurture.web.admin.campaigns import views  # noqa: F401 - adds the routes to the admin blueprint
