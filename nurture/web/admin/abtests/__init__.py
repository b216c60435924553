"""Admin: A/B subject tests — every tested step, its variants and what the figures say."""

from nurture.web.admin.abtests.views import bp

__all__ = ["bp"]
