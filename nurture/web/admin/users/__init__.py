from nurture.web.admin.users import views  # noqa: F401 - adds the routes to the admin blueprint
