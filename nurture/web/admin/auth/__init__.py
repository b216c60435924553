"""Admin pages"""

from nurture.web.admin.auth.views import bp

__all__ = ["bp"]
