"""Public tracking paths: open pixel, click redirect, unsubscribe and preferences."""

from nurture.tracking.views import bp

__all__ = ["bp"]
