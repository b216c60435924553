from nurture.web.admin.openings import views  # noqa: F401 - adds the routes to the admin blueprint
