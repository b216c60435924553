"""Admin page for operators: is nurture working, and if not, where does it stop?"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from nurture import runtime
from nurture.core.delivery.monitoring import queue_snapshot
from nurture.extensions import db
from nurture.models import Role
from nurture.tasks import monitoring
from nurture.web.admin.access import role_required
from nurture.web.ops.readiness import readiness

bp = Blueprint("system", __name__, template_folder="templates", static_folder="static")
log = logging.getLogger(__name__)

# Failed jobs shown in detail; the count covers them all.
SHOWN_FAILED = 50


@bp.get("/")
@role_required(Role.ADMIN)
def system():
    """Workers alive, queue depth and age, failed jobs, the breaker, the last pass, /readyz."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = runtime.now()
    try:
        queue = queue_snapshot(db.session, now)
    except Exception:  # noqa: BLE001 - the page must say the database is down, not fail
        log.warning("system page: the database did not answer", exc_info=True)
        db.session.rollback()
        queue = None
    interval = float(app.config["SCHEDULER_INTERVAL"])
    return render_template(
        "admin/system/index.html",
        now=now,
        # RQ stamps workers and jobs with the wall clock, not the app's (injected) one.
        wall_now=datetime.now(UTC),
        queue=queue,
        rq=monitoring.snapshot(app, failed_limit=SHOWN_FAILED),
        ready=readiness(app).report(),
        interval=interval,
        # A pass older than this means no scheduler is running (or it is stuck).
        stale_after=max(3 * interval, 60.0),
        threshold=int(app.config["SMTP_BREAKER_THRESHOLD"]),
        cooldown=float(app.config["SMTP_BREAKER_COOLDOWN_SECONDS"]),
        shown_failed=SHOWN_FAILED,
    )


@bp.post("/jobs/retry")
@role_required(Role.ADMIN)
def retry_jobs():
    """Hand failed jobs back to the workers: the ticked ones, or all with ``all``."""
    chosen = None if request.form.get("all") else request.form.getlist("job_id")
    if chosen is not None and not chosen:
        flash("Tick the failed jobs to retry, or use “Retry all”.", "error")
        return redirect(url_for(".system"))
    result = monitoring.retry_failed(chosen)
    if result.error:
        flash(f"Redis did not answer ({result.error}); nothing was retried.", "error")
    elif result.requeued:
        gone = f" {result.gone} had been retried or expired already." if result.gone else ""
        flash(
            f"Handed {result.requeued} job{'s' if result.requeued != 1 else ''} back to the "
            f"workers.{gone}",
            "success",
        )
    else:
        flash("Those jobs had been retried or expired already.", "info")
    return redirect(url_for(".system"))


@bp.app_template_filter("ago")
def ago(then: datetime | None, now: datetime) -> str:
    """``then`` relative to ``now`` as a person says it: ``12 s``, ``4 min``, ``2 h``."""
    if then is None:
        return "—"
    return duration((now - then).total_seconds())


@bp.app_template_filter("duration")
def duration(seconds: float) -> str:
    """Seconds as ``0.4 s``, ``12 s``, ``4 min``, ``2 h`` or ``3 days``."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.0f} s" if seconds == int(seconds) else f"{seconds:.1f} s"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (2 if unit == "days" else 1):
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
