"""Who enters a campaign and who leaves it: entry filters, re-entry, segment entries and exits.

The periodic pass (``run_entries``, called by the scheduler) works in set-based SQL: one
INSERT … SELECT per segment-entry campaign, one UPDATE per exit rule.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.orm import Session

# A module import: enrolment imports this module too.
from nurture.core.campaigns import enrolment as enrolment_service
from nurture.core.campaigns.entry_rules import first_due, may_enter
from nurture.core.compliance.preferences import topic_allows
from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    ExitRule,
    Segment,
)
from nurture.models.base import rows_changed

# Which candidates a check is limited to: ids, a select of ids, or None for everyone.
Only = Collection[int] | Select[int] | None


# --- entry filters and re-entry (pure) ---------------------------------------------------------


# --- the periodic pass -------------------------------------------------------------------------


def segment_rules(session: Session, campaign: Campaign) -> dict[str, Any] | None:
    """The rules of the campaign's entry segment, or None when it names no segment."""
    value = campaign.entry_value.removeprefix("segment:")
    if not value.isdigit():
        return None
    segment = session.get(Segment, int(value))
    return segment.rules if segment is not None else None


def in_segment(rules: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    """SQL over ``Candidate``: the candidate matches the segment's rules."""
    from nurture.core.audience.segments import compile_rules  # rules compile in their own module

    return compile_rules(rules, now)


def enrol_segment_entrants(
    session: Session, campaign: Campaign, now: datetime, only: Only = None
) -> int:
    """Enrol the segment's members who may enter, in one INSERT … SELECT; returns how many.

    ``only`` limits the check to those candidates (the ones that just changed). The campaign
    row is locked first (PostgreSQL), so two schedulers never both insert the same candidate;
    SQLite runs one writer at a time anyway.
    """
    if campaign.entry_type != EntryType.SEGMENT or not campaign.steps:
        return 0
    rules = segment_rules(session, campaign)
    if rules is None:
        return 0
    session.execute(select(Campaign.id).where(Campaign.id == campaign.id).with_for_update())
    entrants = select(Candidate.id).where(
        Candidate.status == CandidateStatus.ACTIVE,
        in_segment(rules, now),
        topic_allows(campaign.topic),
        may_enter(campaign),
        *([Candidate.id.in_(only)] if only is not None else []),
    )
    due = first_due(campaign, now)
    return enrolment_service.enrol_all(session, campaign.id, entrants, now, due)


def _exit(session: Session, where: list[ColumnElement[bool]], reason: str, now: datetime) -> int:
    result = session.execute(
        update(Enrolment)
        .where(Enrolment.status == EnrolmentStatus.ACTIVE, *where)
        .values(status=EnrolmentStatus.EXITED, exit_reason=reason, next_send_at=None, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)


def exit_left_segment(
    session: Session, campaign: Campaign, now: datetime, only: Only = None
) -> int:
    """End the enrolments of candidates (of ``only``, when given) no longer in its segment."""
    if ExitRule.LEFT_SEGMENT not in (campaign.exit_on or []):
        return 0
    rules = segment_rules(session, campaign)
    if rules is None:
        return 0
    still_in = select(Candidate.id).where(in_segment(rules, now))
    where = [Enrolment.campaign_id == campaign.id, Enrolment.candidate_id.not_in(still_in)]
    if only is not None:
        where.append(Enrolment.candidate_id.in_(only))
    return _exit(session, where, ExitRule.LEFT_SEGMENT, now)


def exit_replied(session: Session, now: datetime) -> int:
    """A reply after entering ends the drip, so a recruiter takes over the conversation.

    Broadcasts are one mail, already decided: a reply to a drip does not cancel a newsletter.
    """
    replied = (
        select(Candidate.id)
        .where(
            Candidate.id == Enrolment.candidate_id,
            Candidate.last_replied_at.is_not(None),
            Candidate.last_replied_at >= Enrolment.created_at,
        )
        .exists()
    )
    drips = select(Campaign.id).where(Campaign.kind != CampaignKind.BROADCAST)
    return _exit(session, [replied, Enrolment.campaign_id.in_(drips)], ExitRule.REPLIED, now)


def exit_unmailable(session: Session, now: datetime) -> int:
    """Enrolments of candidates who bounced or complained end, with that as the reason."""
    ended = 0
    for status in (CandidateStatus.BOUNCED, CandidateStatus.COMPLAINED):
        gone = select(Candidate.id).where(Candidate.status == status)
        ended += _exit(session, [Enrolment.candidate_id.in_(gone)], str(status), now)
    return ended


def segment_campaigns(session: Session) -> list[Campaign]:
    """Active drips whose entry is a segment."""
    return list(
        session.scalars(
            select(Campaign).where(
                Campaign.status == CampaignStatus.ACTIVE,
                Campaign.entry_type == EntryType.SEGMENT,
                Campaign.kind != CampaignKind.BROADCAST,
            )
        )
    )


def check_segments(session: Session, now: datetime, only: Only = None) -> dict[str, int]:
    """Segment entries and left-segment exits, for ``only`` these candidates or for everyone.

    Called with the ids of candidates that just changed (saved through the API or an ATS event,
    imported, edited, tagged), so they enter without waiting for the scheduler, and by the
    periodic pass for everyone, which also catches what time alone changes ("no open in 60 days").
    Not committed.
    """
    counts = {"entered": 0, "left_segment": 0}
    if isinstance(only, Collection) and not only:
        return counts
    for campaign in segment_campaigns(session):
        counts["left_segment"] += exit_left_segment(session, campaign, now, only)
        counts["entered"] += enrol_segment_entrants(session, campaign, now, only)
    return counts


def run_entries(session: Session, now: datetime) -> dict[str, int]:
    """The periodic pass: segment entries, then exits (left segment, replied, bounced)."""
    counts = check_segments(session, now)
    session.commit()
    counts["replied"] = exit_replied(session, now)
    counts["unmailable"] = exit_unmailable(session, now)
    session.commit()
    return counts
