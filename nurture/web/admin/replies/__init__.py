"""Admin: the replies inbox — candidates' answers, open until someone handles them."""

from nurture.web.admin.replies.views import bp

__all__ = ["bp"]
