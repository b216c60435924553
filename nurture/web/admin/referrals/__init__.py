"""Admin: referrals from the talent network — who recommended whom, what came of it."""

from nurture.web.admin.referrals.views import bp

__all__ = ["bp"]
