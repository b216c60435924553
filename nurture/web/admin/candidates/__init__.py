"""candidates"""

from nurture.web.admin.candidates.views import bp

__all__ = ["bp"]
