from nurture.web.admin.suppressions import views  # noqa: F401 - adds the routes to the admin blueprint
