"""campaigns"""

from nurture.web.admin.campaigns.views import bp

__all__ = ["bp"]
