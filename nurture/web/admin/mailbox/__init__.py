"""Admin pages"""

from nurture.web.admin.mailbox.views import bp

__all__ = ["bp"]
