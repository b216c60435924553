"""segments"""

from nurture.web.admin.segments.views import bp

__all__ = ["bp"]
