"""Admin: feedback both ways — candidates' ratings and answers, and the notes recruiters owe."""

from nurture.web.admin.feedback.views import bp

__all__ = ["bp"]
