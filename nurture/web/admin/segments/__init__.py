"""Admin: the segment list and the segment builder with its live count."""

from nurture.web.admin.segments.views import bp

__all__ = ["bp"]
