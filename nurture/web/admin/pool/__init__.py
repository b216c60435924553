"""Admin: talent-pool health — active, cold and sunset shares over time, and the policy."""

from nurture.web.admin.pool.views import bp

__all__ = ["bp"]
