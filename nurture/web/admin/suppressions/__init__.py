"""suppressions"""

from nurture.web.admin.suppressions.views import bp

__all__ = ["bp"]
