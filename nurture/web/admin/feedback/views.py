"""Admin page: what candidates told us (per stage and rejection reason) and the candidates whose
personal follow-up waits for the recruiter's note (strengths)."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, render_template, request

from nurture import runtime
from nurture.core.feedback import answers as answer_service
from nurture.extensions import db
from nurture.models import Role
from nurture.web.admin.access import role_required

bp = Blueprint("feedback", __name__, template_folder="templates")
PERIODS = [(30, "30 days"), (90, "90 days"), (365, "12 months"), (0, "All time")]


def _days() -> int:
    try:
        days = int(request.args.get("days", 90))
    except ValueError:
        return 90
    return days if days in {d for d, _ in PERIODS} else 90


def _chosen(name: str, limit: int) -> str | None:
    value = request.args.get(name)
    return value[:limit] if value else None


@bp.get("")
@role_required(Role.VIEWER)
def feedback():
    """Ratings and answers per stage and reason, the answers, and who lacks a note."""
    days = _days()
    since = runtime.now() - timedelta(days=days) if days else None
    stage, reason = _chosen("stage", 100), _chosen("reason", 200)
    found, total = answer_service.answers(db.session, stage, reason, since, 100)
    missing, missing_total = answer_service.missing_strengths(db.session, 100)
    return render_template(
        "admin/feedback/index.html",
        question=answer_service.QUESTION,
        stages=answer_service.by_stage(db.session, since),
        reasons=answer_service.by_reason(db.session, since),
        answers=found,
        answers_total=total,
        stage=stage,
        reason=reason,
        days=days,
        periods=PERIODS,
        missing=missing,
        missing_total=missing_total,
    )
