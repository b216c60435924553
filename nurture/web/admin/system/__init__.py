"""Admin: the System page — workers, queue, failed jobs, breaker, scheduler, readiness."""

from nurture.web.admin.system.views import bp

__all__ = ["bp"]
