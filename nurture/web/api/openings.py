"""JSON API: job openings, their reviewed list of matching candidates, and approval."""

from __future__ import annotations

from flask import jsonify

from nurture import runtime
from nurture.core.campaigns import openings as opening_service
from nurture.core.campaigns.schemas import MatchIn, OpeningIn
from nurture.core.errors import NotFound
from nurture.extensions import db
from nurture.models import Role
from nurture.models.openings import Opening
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation


def _opening_or_404(job_id: int) -> Opening:
    try:
        return opening_service.opening_or_404(db.session, job_id)
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@operation("POST", "/jobs", role=Role.EDITOR, body=OpeningIn, ok=(201,))
def create_opening(body: OpeningIn):
    """Create a job opening and propose matching candidates for review."""
    job, count = opening_service.open_for_review(db.session, body, runtime.now())
    db.session.commit()
    return jsonify({**opening_service.opening_dict(job), "match_count": count}), 201


@operation("GET", "/jobs/<int:job_id>", role=Role.VIEWER)
def get_opening(job_id: int):
    """A job opening with the counts of its review."""
    job = _opening_or_404(job_id)
    return jsonify(
        {
            **opening_service.opening_dict(job),
            **opening_service.summary(db.session, job, runtime.now()),
        }
    )


@operation("GET", "/jobs/<int:job_id>/matches", role=Role.VIEWER)
def opening_matches(job_id: int):
    """The ranked list, with why each candidate matched and whether they were removed."""
    job = _opening_or_404(job_id)
    rows = opening_service.review_list(db.session, job)
    return jsonify(
        {
            "job_id": job.id,
            **opening_service.summary(db.session, job, runtime.now()),
            "items": [
                {
                    "candidate_id": row.OpeningMatch.candidate_id,
                    "email": row.email,
                    "name": " ".join(p for p in (row.first_name, row.last_name) if p),
                    "score": row.OpeningMatch.score,
                    "reasons": row.OpeningMatch.reasons,
                    "excluded": row.OpeningMatch.excluded,
                    "enrolment_status": row.enrolment_status,
                }
                for row in rows
            ],
        }
    )


def _set_excluded(job_id: int, candidate_id: int, excluded: bool):
    job = _opening_or_404(job_id)
    try:
        match = opening_service.set_excluded(db.session, job, candidate_id, excluded, runtime.now())
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    db.session.commit()
    return jsonify({"candidate_id": match.candidate_id, "excluded": match.excluded})


@operation("POST", "/jobs/<int:job_id>/matches/<int:candidate_id>/exclude", role=Role.EDITOR)
def exclude_match(job_id: int, candidate_id: int):
    """Remove a candidate from the list: they are never mailed about this job."""
    return _set_excluded(job_id, candidate_id, True)


@operation("POST", "/jobs/<int:job_id>/matches/<int:candidate_id>/include", role=Role.EDITOR)
def include_match(job_id: int, candidate_id: int):
    """Put a removed candidate back on the list."""
    return _set_excluded(job_id, candidate_id, False)


@operation("POST", "/jobs/<int:job_id>/matches", role=Role.EDITOR, body=MatchIn, ok=(201,))
def add_match(job_id: int, body: MatchIn):
    """Add a candidate to the list by email."""
    job = _opening_or_404(job_id)
    match = opening_service.add_candidate(db.session, job, body.email, runtime.now())
    db.session.commit()
    return jsonify(
        {"candidate_id": match.candidate_id, "score": match.score, "reasons": match.reasons}
    ), 201


@operation("POST", "/jobs/<int:job_id>/approve", role=Role.EDITOR, errors=(409,))
def approve_opening(job_id: int):
    """Send the alert to the reviewed list; approving again mails only people not yet enrolled."""
    job = _opening_or_404(job_id)
    enrolled = opening_service.approve(db.session, job, runtime.now())
    db.session.commit()
    return jsonify({"job_id": job.id, "campaign_id": job.campaign_id, "enrolled": enrolled})
