"""Admin: the dashboard."""

from nurture.web.admin.dashboard.views import bp

__all__ = ["bp"]
