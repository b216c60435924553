"""JSON API: rejection promptness — time to first mail, the target, who is waiting; metrics."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify, request

from nurture import runtime
from nurture.core.feedback import promptness as promptness_service
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.auth import requires
from nurture.web.api.referrals import parse_days
from nurture.web.api.routes import bp
from nurture.web.api.views_compat import _json_body


def _target() -> float:
    return promptness_service.target_hours(db.session, current_app.config["REJECTION_TARGET_HOURS"])


@bp.get("/promptness")
@requires(Role.VIEWER)
def promptness():
    """p50/p95 from rejection to first mail, overall, per campaign and per recruiter, and the
    rejected candidates waiting past the target (``?days=``, 30 by default)."""
    days = parse_days(request.args, default=30)
    now, target = runtime.now(), _target()
    summary = promptness_service.promptness(db.session, now, target, days)
    waiting, total = promptness_service.waiting(db.session, now, target, days)
    return jsonify(
        {
            **summary.as_dict(),
            "waiting": {"count": total, "candidates": [w.as_dict() for w in waiting]},
        }
    )


@bp.put("/promptness/target")
@requires(Role.ADMIN)
def promptness_target():
    """Set the team's target: ``{"hours": 48}``."""
    hours = promptness_service.set_target(
        db.session, _json_body().get("hours"), g.api_user, runtime.now()
    )
    db.session.commit()
    return jsonify({"target_hours": hours})


@bp.get("/metrics")
@requires(Role.VIEWER)
def metrics():
    """Prometheus text format: rejection promptness and who waits past the target."""
    now, target = runtime.now(), _target()
    summary = promptness_service.promptness(db.session, now, target, 30)
    overall = summary.overall
    lines = [
        "# HELP nurture_rejected_waiting_over_target Rejected candidates (last 30 days) with "
        "no mail yet, past the target.",
        "# TYPE nurture_rejected_waiting_over_target gauge",
        f"nurture_rejected_waiting_over_target {overall.waiting}",
        "# HELP nurture_rejection_target_hours The team's target from rejection to first mail.",
        "# TYPE nurture_rejection_target_hours gauge",
        f"nurture_rejection_target_hours {target:g}",
        "# HELP nurture_rejection_first_mail_hours Hours from rejection to first mail (30 days).",
        "# TYPE nurture_rejection_first_mail_hours summary",
    ]
    for quantile, value in (("0.5", overall.p50_hours), ("0.95", overall.p95_hours)):
        if value is not None:
            lines.append(f'nurture_rejection_first_mail_hours{{quantile="{quantile}"}} {value:g}')
    lines.append(f"nurture_rejection_first_mail_hours_count {overall.mailed}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
