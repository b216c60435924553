"""Admin: users, roles and API tokens (admins only)."""

from nurture.web.admin.users.views import bp

__all__ = ["bp"]
