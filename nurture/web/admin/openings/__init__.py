"""Admin: job openings, the ranked review list of matching candidates, and the alert."""

from nurture.web.admin.openings.views import bp

__all__ = ["bp"]
