"""Admin: the suppression list — counts by reason, check an address, add addresses."""

from nurture.web.admin.suppressions.views import bp

__all__ = ["bp"]
