"""Putting candidates into campaigns and taking them out, including from ATS events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nurture.core import addresses
from nurture.core.campaigns.entry_rules import first_due, in_group_elsewhere
from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    Message,
    MessageState,
    Reentry,
    Tag,
)
from nurture.models.base import UTCDateTime, rows_changed
from nurture.models.candidates import candidate_tags


def enrol(
    session: Session, candidate: Candidate, campaign: Campaign, now: datetime
) -> Enrolment | None:
    """Start the candidate on the campaign's first step; None when they may not be mailed.

    The campaign's re-entry policy decides about someone enrolled before: "never" keeps them
    out, "after_exit" lets them in once the earlier enrolment ended, "always" restarts it.
    """
    if candidate.status != CandidateStatus.ACTIVE or not campaign.steps:
        return None
    if campaign.kind == CampaignKind.BROADCAST:
        return None  # the broadcast pass picks its audience when it sends
    if (candidate.topics or {}).get(campaign.topic) is False:
        return None  # they turned this topic off in the preference centre
    if addresses.is_suppressed(session, candidate.email):
        return None
    if group_campaign(session, candidate, campaign) is not None:
        return None  # one campaign of an exclusive group at a time: the first one keeps them
    previous = session.scalars(
        select(Enrolment).where(
            Enrolment.candidate_id == candidate.id, Enrolment.campaign_id == campaign.id
        )
    ).all()
    existing = next((e for e in previous if e.status == EnrolmentStatus.ACTIVE), None)
    if existing is not None and campaign.reentry != Reentry.ALWAYS:
        return existing
    if previous and existing is None and campaign.reentry == Reentry.NEVER:
        return None
    if existing is not None:
        existing.status = EnrolmentStatus.EXITED
        existing.exit_reason = "re-entered"
        existing.next_send_at = None
        existing.ended_at = now
    enrolment = Enrolment(
        candidate=candidate,
        campaign=campaign,
        next_position=0,
        next_send_at=first_due(campaign, now),
        status=EnrolmentStatus.ACTIVE,
        created_at=now,
    )
    session.add(enrolment)
    session.flush()
    return enrolment


def group_campaign(session: Session, candidate: Candidate, campaign: Campaign) -> str | None:
    """The name of the other campaign of ``campaign``'s exclusive group the candidate is
    active in, or None."""
    if not campaign.exclusive_group:
        return None
    return session.scalar(
        select(Campaign.name)
        .join(Enrolment, Enrolment.campaign_id == Campaign.id)
        .where(
            Campaign.exclusive_group == campaign.exclusive_group,
            Campaign.id != campaign.id,
            Enrolment.candidate_id == candidate.id,
            Enrolment.status == EnrolmentStatus.ACTIVE,
        )
        .limit(1)
    )


def _tag_entrants(campaign: Campaign) -> Select[int]:
    """Active candidates with the campaign's entry tag and no active enrolment in it."""
    already = select(Enrolment.candidate_id).where(
        Enrolment.campaign_id == campaign.id, Enrolment.status == EnrolmentStatus.ACTIVE
    )
    return (
        select(Candidate.id)
        .join(candidate_tags, candidate_tags.c.candidate_id == Candidate.id)
        .join(Tag, Tag.id == candidate_tags.c.tag_id)
        .where(
            Tag.name == campaign.entry_value,
            Candidate.status == CandidateStatus.ACTIVE,
            Candidate.id.not_in(already),
            ~in_group_elsewhere(campaign),
        )
    )


def count_tag_entrants(session: Session, campaign: Campaign) -> int:
    """How many candidates activating a tag-entry campaign would enrol now."""
    if campaign.entry_type != EntryType.TAG or not campaign.entry_value:
        return 0
    return session.scalar(select(func.count()).select_from(_tag_entrants(campaign).subquery())) or 0


def enrol_all(
    session: Session,
    campaign_id: int,
    candidate_ids: Select[int],
    now: datetime,
    next_send_at: datetime | None,
) -> int:
    """Enrol every candidate id the select yields, in one INSERT … SELECT; returns how many."""
    ids = candidate_ids.subquery()
    rows = select(
        list(ids.c)[0],
        literal(campaign_id),
        literal(0),
        literal(next_send_at, UTCDateTime()),
        literal(EnrolmentStatus.ACTIVE.value),
        literal(""),
        literal(now, UTCDateTime()),
    )
    result = session.execute(
        insert(Enrolment)
        .from_select(
            [
                "candidate_id",
                "campaign_id",
                "next_position",
                "next_send_at",
                "status",
                "exit_reason",
                "created_at",
            ],
            rows,
        )
        # SQLAlchemy 2.1 reports INSERT … SELECT row counts only when asked to keep them.
        .execution_options(preserve_rowcount=True)
    )
    return rows_changed(result)


def queue_messages(session: Session, rows: Select[int, int, int, int], now: datetime) -> int:
    """Queue one message per row of ``rows`` in one INSERT … SELECT; returns how many it made.

    ``rows`` selects (candidate id, campaign id, step id, enrolment id); a message that exists
    for that enrolment and step already is left alone (the unique key), so running twice, or
    from two schedulers at once, queues each mail once.
    """
    values = rows.add_columns(
        literal(MessageState.QUEUED.value),
        literal(0),
        literal(""),
        literal(""),
        literal(""),
        literal(""),
        literal(now, UTCDateTime()),
    )
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    result = session.execute(
        dialect.insert(Message)
        .from_select(
            [
                "candidate_id",
                "campaign_id",
                "step_id",
                "enrolment_id",
                "state",
                "attempts",
                "error",
                "message_id",
                "to_address",
                "subject",
                "queued_at",
            ],
            values,
        )
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)
    )
    return rows_changed(result)


def enrol_tag_entrants(session: Session, campaign: Campaign, now: datetime) -> int:
    """Enrol everyone who carries the campaign's entry tag, in one INSERT … SELECT."""
    if campaign.entry_type != EntryType.TAG or not campaign.steps:
        return 0
    return enrol_all(session, campaign.id, _tag_entrants(campaign), now, first_due(campaign, now))


def on_tags_added(session: Session, candidate: Candidate, names: list[str], now: datetime) -> int:
    """A tag was added: enrol the candidate into active campaigns that start on it."""
    if not names:
        return 0
    campaigns = session.scalars(
        select(Campaign).where(
            Campaign.status == CampaignStatus.ACTIVE,
            Campaign.entry_type == EntryType.TAG,
            Campaign.entry_value.in_(names),
        )
    ).all()
    return sum(1 for c in campaigns if enrol(session, candidate, c, now) is not None)
