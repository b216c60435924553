from nurture.web.admin.home import views  # noqa: F401 - adds the routes to the admin blueprint
