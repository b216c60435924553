"""The JSON API under /api/v1."""

from nurture.api.views import bp

__all__ = ["bp"]
