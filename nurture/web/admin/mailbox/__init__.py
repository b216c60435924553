"""Admin: the mail the local SMTP capture caught."""

from nurture.web.admin.mailbox.views import bp

__all__ = ["bp"]
