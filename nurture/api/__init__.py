"""The JSON API under /api/v1."""

from nurture.api import imports  # noqa: F401 - adds the import routes to bp
from nurture.api.views import bp

__all__ = ["bp"]
