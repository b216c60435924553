"""Public tracking paths: open pixel, click redirect, unsubscribe and preferences; referrals."""

from nurture.web.public import referrals
from nurture.web.public.hits import init_app
from nurture.web.public.views import bp

bp.register_blueprint(referrals.bp)

__all__ = ["bp", "init_app"]
