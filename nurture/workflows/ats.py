"""ATS events: a rejection enrols the candidate, a hire or a re-application ends their drips."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core.audience import candidates as candidate_service
from nurture.core.audience.schemas import AtsEventIn
from nurture.core.campaigns.enrolment import enrol
from nurture.core.campaigns.entry_rules import passes_entry_filter
from nurture.core.inputs import parse
from nurture.models.ats import AtsEvent
from nurture.models.campaigns import AtsEventType, Campaign, CampaignStatus, EntryType, ExitRule
from nurture.models.candidates import CandidateStatus
from nurture.workflows import referrals
from nurture.workflows.candidates import save_candidate


def handle_ats_event(
    session: Session, payload: AtsEventIn | Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """Apply an ATS event: a rejection enrols, a hire or re-application ends the drips."""
    event = payload if isinstance(payload, AtsEventIn) else parse(AtsEventIn, payload)
    candidate, created = save_candidate(session, event.candidate, now)
    result: dict[str, Any] = {"candidate_id": candidate.id, "created": created}
    # Kept: rejection promptness is measured from this moment, per recruiter and campaign.
    record = AtsEvent(
        candidate_id=candidate.id,
        type=str(event.type),
        received_at=now,
        recruiter_email=candidate.recruiter_email,
        recruiter_name=candidate.recruiter_name,
        enrolled=0,
    )
    session.add(record)
    if event.type in (AtsEventType.REJECTED, AtsEventType.REAPPLIED):
        # A new application is the other way back from a sunset (pool health).
        candidate_service.come_back(candidate, "new application", now)
    if event.type == AtsEventType.REJECTED:
        if candidate.status == CandidateStatus.HIRED:
            # Hired once, rejected now (they left and re-applied): a candidate again.
            candidate.status = CandidateStatus.ACTIVE
        campaigns = session.scalars(
            select(Campaign).where(
                Campaign.status == CampaignStatus.ACTIVE,
                Campaign.entry_type == EntryType.ATS_EVENT,
                Campaign.entry_value == event.type,
            )
        ).all()
        enrolled = [
            c.id
            for c in campaigns
            if passes_entry_filter(candidate, c.entry_filter)
            and enrol(session, candidate, c, now) is not None
        ]
        result["enrolled_campaign_ids"] = enrolled
        record.campaign_id = enrolled[0] if enrolled else None
        record.enrolled = len(enrolled)
    elif event.type == AtsEventType.HIRED:
        candidate_service.mark_hired(session, candidate, now)
        result["status"] = candidate.status
        result["referrals_thanked"] = referrals.on_hired(session, candidate, now)
    else:
        result["ended_enrolments"] = candidate_service.end_enrolments(
            session, candidate, ExitRule.REAPPLIED, now, by_rule=True
        )
    return result
