"""JSON API: feedback both ways — the candidates' ratings and written answers per stage and
rejection reason, and the candidates a follow-up waits for because their strengths are empty."""

from __future__ import annotations

from datetime import timedelta

from flask import jsonify

from nurture import runtime
from nurture.core.feedback import answers as answer_service
from nurture.core.feedback.schemas import FeedbackQuery
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.routes import operation


@operation("GET", "/feedback", role=Role.VIEWER, query=FeedbackQuery)
def feedback(query: FeedbackQuery):
    """Ratings and written answers per stage and rejection reason, and the answers themselves."""
    since = runtime.now() - timedelta(days=query.days) if query.days else None
    found, total = answer_service.answers(
        db.session, query.stage, query.rejection_reason, since, query.limit
    )
    return jsonify(
        {
            "question": answer_service.QUESTION,
            "by_stage": [g.as_dict() for g in answer_service.by_stage(db.session, since)],
            "by_rejection_reason": [
                g.as_dict() for g in answer_service.by_reason(db.session, since)
            ],
            "answers": {"count": total, "items": [a.as_dict() for a in found]},
        }
    )


@operation("GET", "/feedback/missing-strengths", role=Role.VIEWER)
def missing_strengths():
    """Active candidates without the recruiter's note whose mail waits for it (held first)."""
    found, total = answer_service.missing_strengths(db.session)
    return jsonify({"count": total, "candidates": [m.as_dict() for m in found]})
