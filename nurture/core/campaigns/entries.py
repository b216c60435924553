"""Who enters a campaign and who leaves it: entry filters, re-entry, segment entries and exits.

The periodic pass (``run_entries``, called by the scheduler) works in set-based SQL: one
INSERT … SELECT per segment-entry campaign, one UPDATE per exit rule.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, literal, or_, select, update
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
from nurture.models.base import UTCDateTime, rows_changed
from nurture.models.campaigns import BEFORE_ACTIVATION

# Which candidates a check is limited to: ids, a select of ids, or None for everyone.
Only = Collection[int] | Select[int] | None


# --- entry filters and re-entry (pure) ---------------------------------------------------------


# --- the periodic pass -------------------------------------------------------------------------


def entry_segment_id(campaign: Campaign) -> int | None:
    """The segment whose members enter the campaign: its entry, or its "also enters"."""
    if campaign.entry_type == EntryType.SEGMENT:
        value = campaign.entry_value.removeprefix("segment:")
        return int(value) if value.isdigit() else None
    return campaign.entry_segment_id


def segment_rules(session: Session, campaign: Campaign) -> dict[str, Any] | None:
    """The rules of the campaign's entry segment, or None when it names no segment."""
    segment_id = entry_segment_id(campaign)
    segment = session.get(Segment, segment_id) if segment_id is not None else None
    return segment.rules if segment is not None else None


def _entrants(
    session: Session, campaign: Campaign, now: datetime, only: Only = None
) -> Select[int] | None:
    """SELECT the ids of the segment's members who may enter now, or None without a segment."""
    rules = segment_rules(session, campaign)
    if rules is None:
        return None
    return select(Candidate.id).where(
        Candidate.status == CandidateStatus.ACTIVE,
        in_segment(rules, now),
        topic_allows(campaign.topic),
        may_enter(campaign),
        *([Candidate.id.in_(only)] if only is not None else []),
    )


def count_segment_entrants(session: Session, campaign: Campaign, now: datetime) -> int:
    """How many of the segment's members would enter the campaign now."""
    entrants = _entrants(session, campaign, now)
    if entrants is None or not campaign.steps:
        return 0
    return session.scalar(select(func.count()).select_from(entrants.subquery())) or 0


def keep_out_current_members(session: Session, campaign: Campaign, now: datetime) -> int:
    """Activated for "only those who join from now": today's members get a row that keeps
    them out (``BEFORE_ACTIVATION``) until they leave the segment; returns how many."""
    entrants = _entrants(session, campaign, now)
    if entrants is None:
        return 0
    ids = entrants.subquery()
    rows = select(
        list(ids.c)[0],
        literal(campaign.id),
        literal(0),
        literal(EnrolmentStatus.EXITED.value),
        literal(BEFORE_ACTIVATION),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    )
    result = session.execute(
        insert(Enrolment)
        .from_select(
            [
                "candidate_id",
                "campaign_id",
                "next_position",
                "status",
                "exit_reason",
                "created_at",
                "ended_at",
            ],
            rows,
        )  # fmt: skip
        .execution_options(preserve_rowcount=True)
    )
    return rows_changed(result)


def _forget_left_members(session: Session, campaign: Campaign, now: datetime) -> None:
    """Those kept out at activation who left the segment since may enter when they return."""
    rules = segment_rules(session, campaign)
    if rules is None:
        return
    session.execute(
        delete(Enrolment)
        .where(
            Enrolment.campaign_id == campaign.id,
            Enrolment.exit_reason == BEFORE_ACTIVATION,
            Enrolment.candidate_id.not_in(select(Candidate.id).where(in_segment(rules, now))),
        )
        .execution_options(synchronize_session=False)
    )


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
    if entry_segment_id(campaign) is None or not campaign.steps:
        return 0
    session.execute(select(Campaign.id).where(Campaign.id == campaign.id).with_for_update())
    entrants = _entrants(session, campaign, now, only)
    if entrants is None:
        return 0
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
    """End the enrolments of candidates (of ``only``, when given) no longer in its segment.

    Only where the segment is the campaign's entry: a rejection drip that also takes a segment's
    members keeps the candidates the ATS sent, in the segment or not.
    """
    if (
        ExitRule.LEFT_SEGMENT not in (campaign.exit_on or [])
        or campaign.entry_type != EntryType.SEGMENT
    ):
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
    """Active drips that candidates enter by being in a segment."""
    return list(
        session.scalars(
            select(Campaign).where(
                Campaign.status == CampaignStatus.ACTIVE,
                or_(
                    Campaign.entry_type == EntryType.SEGMENT,
                    Campaign.entry_segment_id.is_not(None),
                ),
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
        if only is None:
            _forget_left_members(session, campaign, now)
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
