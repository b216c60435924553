"""What operators' machines ask: /healthz, /readyz and /metrics (no session, no CSRF)."""

from nurture.web.ops.views import bp

__all__ = ["bp"]
