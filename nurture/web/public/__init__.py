"""Public tracking paths: open pixel, click redirect, unsubscribe and preferences."""

from nurture.web.public.hits import init_app
from nurture.web.public.views import bp

__all__ = ["bp", "init_app"]
