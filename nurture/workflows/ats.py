"""ATS events: a rejection enrols the candidate, a hire or a re-application ends their drips."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core.audience import candidates as candidate_service
from nurture.core.campaigns.enrolment import enrol
from nurture.core.campaigns.entry_rules import passes_entry_filter
from nurture.core.errors import ValidationError
from nurture.models.ats import AtsEvent
from nurture.models.campaigns import Campaign, CampaignStatus, EntryType
from nurture.models.candidates import CandidateStatus
from nurture.workflows import referrals
from nurture.workflows.candidates import save_candidate

ATS_EVENT_TYPES = ("candidate.rejected", "candidate.hired", "candidate.reapplied")


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
    candidate, created = save_candidate(session, data, now)
    result: dict[str, Any] = {"candidate_id": candidate.id, "created": created}
    # Kept: rejection promptness is measured from this moment, per recruiter and campaign.
    event = AtsEvent(
        candidate_id=candidate.id,
        type=kind,
        received_at=now,
        recruiter_email=candidate.recruiter_email,
        recruiter_name=candidate.recruiter_name,
        enrolled=0,
    )
    session.add(event)
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
        enrolled = [
            c.id
            for c in campaigns
            if passes_entry_filter(candidate, c.entry_filter)
            and enrol(session, candidate, c, now) is not None
        ]
        result["enrolled_campaign_ids"] = enrolled
        event.campaign_id = enrolled[0] if enrolled else None
        event.enrolled = len(enrolled)
    elif kind == "candidate.hired":
        candidate_service.mark_hired(session, candidate, now)
        result["status"] = candidate.status
        result["referrals_thanked"] = referrals.on_hired(session, candidate, now)
    else:
        result["ended_enrolments"] = candidate_service.end_enrolments(
            session, candidate, "reapplied", now, by_rule=True
        )
    return result
