from nurture.web.admin.email_templates import views  # noqa: F401 - adds the routes to the admin blueprint
