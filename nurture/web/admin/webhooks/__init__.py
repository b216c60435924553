"""Admin: outbound webhooks to the ATS — endpoints and the delivery log."""

from nurture.web.admin.webhooks.views import bp

__all__ = ["bp"]
