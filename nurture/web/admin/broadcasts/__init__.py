from nurture.web.admin.broadcasts import views  # noqa: F401 - adds the routes to the admin blueprint
