"""Admin: the candidate list (search, filters, bulk tag, export) and one candidate's page."""

from nurture.web.admin.candidates.views import bp

__all__ = ["bp"]
