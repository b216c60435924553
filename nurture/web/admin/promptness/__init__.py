"""Admin: rejection promptness — how soon rejected candidates hear from us, and who waits."""

from nurture.web.admin.promptness.views import bp

__all__ = ["bp"]
