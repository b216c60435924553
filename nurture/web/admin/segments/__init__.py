from nurture.web.admin.segments import views  # noqa: F401 - adds the routes to the admin blueprint
