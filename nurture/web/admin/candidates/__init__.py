from nurture.web.admin.candidates import views  # noqa: F401 - adds the routes to the admin blueprint
