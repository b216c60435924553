"""The WSGI entry point: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``."""

from nurture import create_app
from nurture.observability import logs

logs.configure("web")
app = create_app()
