"""JSON API: segments — save rules, count, page through members, preview for the builder."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from sqlalchemy import select

from nurture import runtime
from nurture.core.audience import segments as segment_service
from nurture.core.audience.engagement import score_of
from nurture.core.audience.schemas import MembersQuery, RulesIn, SegmentChange, SegmentIn
from nurture.core.errors import NotFound
from nurture.extensions import db
from nurture.models import Candidate, Role, Segment
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation

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


@operation("POST", "/segments", role=Role.EDITOR, body=SegmentIn, ok=(201,))
def create_segment(body: SegmentIn):
    """Save named rules; answers the id and the current count."""
    now = runtime.now()
    segment = segment_service.save_segment(
        db.session, body.name, body.rules, now, description=body.description
    )
    total = segment_service.count(db.session, segment.rules, now)
    db.session.commit()
    return jsonify({**segment_dict(segment), "count": total}), 201


@operation("PUT", "/segments/<int:segment_id>", role=Role.EDITOR, body=SegmentChange)
def update_segment(segment_id: int, body: SegmentChange):
    """Rename a segment or change its rules."""
    segment = _segment_or_404(segment_id)
    now = runtime.now()
    segment_service.save_segment(
        db.session,
        segment.name if body.name is None else body.name,
        segment.rules if body.rules is None else body.rules,
        now,
        segment=segment,
        description=segment.description if body.description is None else body.description,
    )
    total = segment_service.count(db.session, segment.rules, now)
    db.session.commit()
    return jsonify({**segment_dict(segment), "count": total})


@operation("GET", "/segments", role=Role.VIEWER)
def list_segments():
    """Every segment (without counts: ask each one's /count)."""
    return jsonify(
        {"segments": [segment_dict(s) for s in segment_service.list_segments(db.session)]}
    )


@operation("GET", "/segments/<int:segment_id>", role=Role.VIEWER)
def get_segment(segment_id: int):
    """A segment's name and rules."""
    return jsonify(segment_dict(_segment_or_404(segment_id)))


@operation("GET", "/segments/<int:segment_id>/count", role=Role.VIEWER)
def count_segment(segment_id: int):
    """How many candidates the segment holds now."""
    segment = _segment_or_404(segment_id)
    return jsonify(
        {"id": segment.id, "count": segment_service.count(db.session, segment.rules, runtime.now())}
    )


@operation("GET", "/segments/<int:segment_id>/members", role=Role.VIEWER, query=MembersQuery)
def segment_members(segment_id: int, query: MembersQuery):
    """A page of members in id order; pass the answer's ``next_after`` as ``after``."""
    segment = _segment_or_404(segment_id)
    now, limit = runtime.now(), query.limit
    ids = segment_service.page(db.session, segment.rules, now, after=query.after, limit=limit)
    found = db.session.scalars(select(Candidate).where(Candidate.id.in_(ids))) if ids else []
    people = {c.id: c for c in found}
    return jsonify(
        {
            "members": [member_dict(people[i]) for i in ids if i in people],
            "next_after": ids[-1] if len(ids) == limit else None,
        }
    )


# A read, as in the admin's builder: it counts and saves nothing, so viewers may preview.
@operation("POST", "/segments/preview", role=Role.VIEWER, body=RulesIn)
def preview_segment(body: RulesIn):
    """Validate rules and answer their count and a sample, without saving anything."""
    result = segment_service.preview(db.session, body.rules, runtime.now(), n=SAMPLE)
    return jsonify({"count": result.count, "sample": [member_dict(c) for c in result.sample]})
