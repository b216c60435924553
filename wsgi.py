"""The WSGI entry point: ``gunicorn wsgi:app``."""

from nurture import create_app

app = create_app()
