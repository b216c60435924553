"""Admin sign-in and sign-out."""

from nurture.web.admin.auth.views import bp

__all__ = ["bp"]
