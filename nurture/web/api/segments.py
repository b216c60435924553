"""JSON API: segments — save rules, count, page through members, preview for the builder."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from nurture import runtime
from nurture.core.audience import segments as segment_service
from nurture.core.audience.engagement import score_of
from nurture.core.errors import NotFound
from nurture.extensions import db
from nurture.models import Candidate, Role, Segment
from nurture.web.api.auth import ApiError, requires
from nurture.web.api.views import _json_body, bp

MAX_LIMIT = 500
SAMPLE = 10


def _segment_or_404(segment_id: int) -> Segment:
    try:
        return segment_service.get_segment(db.session, segment_id)
    except NotFound:
        raise ApiError(404, "not_found", f"no segment {segment_id}") from None


def member_dict(candidate: Candidate) -> dict[str, Any]:
    """A member as the segment answers list it: enough to recognise them."""
    return {
        "id": candidate.id,
        "email": candidate.email,
        "name": candidate.full_name,
        "role": candidate.role,
        "stage": candidate.stage,
        "status": candidate.status,
        "engagement_score": score_of(candidate, runtime.now()),
    }


def segment_dict(segment: Segment) -> dict[str, Any]:
    """The API's view of a segment."""
    return {
        "id": segment.id,
        "name": segment.name,
        "description": segment.description,
        "rules": segment.rules,
        "created_at": segment.created_at.isoformat(),
        "updated_at": segment.updated_at.isoformat(),
    }


def _int_arg(name: str, default: int | None, low: int, high: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problem = "must be a whole number"
        raise ApiError(422, "invalid", f"{name} {problem}", {name: problem}) from None
    if value < low or (high is not None and value > high):
        limit = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ApiError(422, "invalid", f"{name} must be {limit}", {name: f"must be {limit}"})
    return value


@bp.post("/segments")
@requires(Role.EDITOR)
def create_segment():
    """Save named rules; answers the id and the current count."""
    body = _json_body()
    now = runtime.now()
    segment = segment_service.save_segment(
        db.session, body.get("name"), body.get("rules"), now,
        description=str(body.get("description") or ""),
    )  # fmt: skip
    total = segment_service.count(db.session, segment.rules, now)
    db.session.commit()
    return jsonify({**segment_dict(segment), "count": total}), 201


@bp.put("/segments/<int:segment_id>")
@requires(Role.EDITOR)
def update_segment(segment_id: int):
    """Rename a segment or change its rules."""
    segment = _segment_or_404(segment_id)
    body = _json_body()
    now = runtime.now()
    segment_service.save_segment(
        db.session, body.get("name", segment.name), body.get("rules", segment.rules), now,
        segment=segment, description=str(body.get("description", segment.description) or ""),
    )  # fmt: skip
    total = segment_service.count(db.session, segment.rules, now)
    db.session.commit()
    return jsonify({**segment_dict(segment), "count": total})


@bp.get("/segments")
@requires(Role.VIEWER)
def list_segments():
    """Every segment (without counts: ask each one's /count)."""
    return jsonify(
        {"segments": [segment_dict(s) for s in segment_service.list_segments(db.session)]}
    )


@bp.get("/segments/<int:segment_id>")
@requires(Role.VIEWER)
def get_segment(segment_id: int):
    """A segment's name and rules."""
    return jsonify(segment_dict(_segment_or_404(segment_id)))


@bp.get("/segments/<int:segment_id>/count")
@requires(Role.VIEWER)
def count_segment(segment_id: int):
    """How many candidates the segment holds now."""
    segment = _segment_or_404(segment_id)
    return jsonify(
        {"id": segment.id, "count": segment_service.count(db.session, segment.rules, runtime.now())}
    )


@bp.get("/segments/<int:segment_id>/members")
@requires(Role.VIEWER)
def segment_members(segment_id: int):
    """A page of members in id order; pass the answer's ``next_after`` as ``after``."""
    segment = _segment_or_404(segment_id)
    after = _int_arg("after", None, 0)
    limit = _int_arg("limit", 100, 1, MAX_LIMIT) or 100
    now = runtime.now()
    ids = segment_service.page(db.session, segment.rules, now, after=after, limit=limit)
    found = db.session.scalars(select(Candidate).where(Candidate.id.in_(ids))) if ids else []
    people = {c.id: c for c in found}
    return jsonify(
        {
            "members": [member_dict(people[i]) for i in ids if i in people],
            "next_after": ids[-1] if len(ids) == limit else None,
        }
    )


@bp.post("/segments/preview")
@requires(Role.VIEWER)  # a read, as in the admin's builder: it counts and saves nothing
def preview_segment():
    """Validate rules and answer their count and a sample, without saving anything."""
    body = _json_body()
    result = segment_service.preview(db.session, body.get("rules"), runtime.now(), n=SAMPLE)
    return jsonify({"count": result.count, "sample": [member_dict(c) for c in result.sample]})
