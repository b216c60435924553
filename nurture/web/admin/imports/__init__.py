from nurture.web.admin.imports import views  # noqa: F401 - adds the routes to the admin blueprint
