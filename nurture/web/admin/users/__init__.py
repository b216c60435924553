"""users"""

from nurture.web.admin.users.views import bp

__all__ = ["bp"]
