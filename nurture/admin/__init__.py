"""The admin that recruiting ops use in the browser."""

from nurture.admin.views import bp

__all__ = ["bp"]
