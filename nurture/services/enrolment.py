"""Putting candidates into campaigns and taking them out, including from ATS events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
)
from nurture.services import candidates as candidate_service
from nurture.services.errors import ValidationError

ATS_EVENT_TYPES = ("candidate.rejected", "candidate.hired", "candidate.reapplied")


def enrol(
    session: Session, candidate: Candidate, campaign: Campaign, now: datetime
) -> Enrolment | None:
    """Start the candidate on the campaign's first step; None when they may not be mailed."""
    if candidate.status != CandidateStatus.ACTIVE or not campaign.steps:
        return None
    if candidate_service.is_suppressed(session, candidate.email):
        return None
    existing = session.scalar(
        select(Enrolment).where(
            Enrolment.candidate_id == candidate.id,
            Enrolment.campaign_id == campaign.id,
            Enrolment.status == EnrolmentStatus.ACTIVE,
        )
    )
    if existing is not None:
        return existing
    enrolment = Enrolment(
        candidate=candidate,
        campaign=campaign,
        next_position=0,
        next_send_at=now + timedelta(seconds=campaign.steps[0].delay_seconds),
        status=EnrolmentStatus.ACTIVE,
        created_at=now,
    )
    session.add(enrolment)
    session.flush()
    return enrolment


def handle_ats_event(session: Session, payload: Any, now: datetime) -> dict[str, Any]:
    """Apply an ATS event: a rejection enrols, a hire or re-application ends the drips."""
    if not isinstance(payload, dict):
        raise ValidationError("the body must be a JSON object", {"body": "expected an object"})
    kind = payload.get("type")
    if kind not in ATS_EVENT_TYPES:
        raise ValidationError(
            "unknown event type", {"type": f"must be one of {', '.join(ATS_EVENT_TYPES)}"}
        )
    data = payload.get("candidate")
    if not isinstance(data, dict):
        raise ValidationError("candidate is missing", {"candidate": "expected an object"})
    candidate, created = candidate_service.upsert_candidate(session, data, now)
    result: dict[str, Any] = {"candidate_id": candidate.id, "created": created}
    if kind == "candidate.rejected":
        if candidate.status == CandidateStatus.HIRED:
            # Hired once, rejected now (they left and re-applied): a candidate again.
            candidate.status = CandidateStatus.ACTIVE
        campaigns = session.scalars(
            select(Campaign).where(
                Campaign.status == CampaignStatus.ACTIVE,
                Campaign.entry_type == EntryType.ATS_EVENT,
                Campaign.entry_value == kind,
            )
        ).all()
        enrolled = [c.id for c in campaigns if enrol(session, candidate, c, now) is not None]
        result["enrolled_campaign_ids"] = enrolled
    elif kind == "candidate.hired":
        candidate_service.mark_hired(session, candidate, now)
        result["status"] = candidate.status
    else:
        result["ended_enrolments"] = candidate_service.end_enrolments(
            session, candidate, "reapplied", now
        )
    return result
