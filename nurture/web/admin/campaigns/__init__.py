"""Admin: the campaign list, the drip builder, status changes and a campaign's analytics."""

from nurture.web.admin.campaigns.views import bp

__all__ = ["bp"]
