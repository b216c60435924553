"""Admin: broadcasts (newsletters) — the list, a new one checked and confirmed, progress."""

from nurture.web.admin.broadcasts.views import bp

__all__ = ["bp"]
