"""openings"""

from nurture.web.admin.openings.views import bp

__all__ = ["bp"]
