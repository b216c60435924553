"""broadcasts"""

from nurture.web.admin.broadcasts.views import bp

__all__ = ["bp"]
