"""Broadcasts (newsletters): one mail to a segment or a tag, now, later, or at a local hour.

When a broadcast is due, the pass creates one enrolment per audience member and one message per
enrolment, each in a single INSERT … SELECT; the unique key on (enrolment, step), the NOT EXISTS
on enrolments and a lock on the campaign row make a second or concurrent pass add nothing.
With ``local_time``, the audience is taken zone by zone as the wall clock reaches the hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, false, func, literal, select
from sqlalchemy.orm import Session, aliased

from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.enrolment import enrol_all, queue_messages
from nurture.core.campaigns.schemas import BroadcastIn
from nurture.core.campaigns.timing import Timing, local_instant, zone
from nurture.core.compliance.preferences import topic_allows
from nurture.core.content.rendering import TemplateLibrary
from nurture.core.content.templates import named_html, sample_copy
from nurture.core.errors import ValidationError
from nurture.core.inputs import parse
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
    Segment,
    Tag,
)
from nurture.models.candidates import candidate_tags

# UTC+14 (Kiribati) reaches a wall-clock hour first, UTC-12 last; after that nobody is left.
EARLIEST = timedelta(hours=14)
INVALID = "the broadcast is not valid"
LATEST = timedelta(hours=12)


def audience_of(campaign: Campaign) -> tuple[str, str]:
    """("segment", id) or ("tag", name): who the broadcast goes to."""
    kind, _, value = campaign.entry_value.partition(":")
    return kind, value


def _audience(session: Session, campaign: Campaign, now: datetime) -> ColumnElement[bool] | None:
    """SQL over ``Candidate``: in the broadcast's segment or carrying its tag."""
    kind, value = audience_of(campaign)
    if kind == EntryType.SEGMENT:
        segment = session.get(Segment, int(value)) if value.isdigit() else None
        if segment is None:
            return None
        from nurture.core.audience.segments import (
            compile_rules,  # rules compile in their own module
        )

        return compile_rules(segment.rules, now)
    if kind == EntryType.TAG:
        return exists().where(
            candidate_tags.c.candidate_id == Candidate.id,
            candidate_tags.c.tag_id == Tag.id,
            Tag.name == value,
        )
    return None


def _members(campaign: Campaign, audience: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    """Who may receive it: active, in the audience, topic on, not already given it."""
    return [
        Candidate.status == CandidateStatus.ACTIVE,
        audience,
        topic_allows(campaign.topic),
        ~exists().where(
            Enrolment.campaign_id == campaign.id, Enrolment.candidate_id == Candidate.id
        ),
    ]


def _enrol(
    session: Session, campaign: Campaign, where: list[ColumnElement[bool]], now: datetime
) -> None:
    """One enrolment per new member, in flight at once (no next_send_at): the pass sends it."""
    enrol_all(session, campaign.id, select(Candidate.id).where(*where), now, next_send_at=None)


def _create_messages(session: Session, campaign: Campaign, now: datetime) -> int:
    """One queued message per enrolment of the broadcast that has none yet."""
    step = campaign.steps[0]
    enrolment = aliased(Enrolment)
    rows = select(
        enrolment.candidate_id, literal(campaign.id), literal(step.id), enrolment.id
    ).where(
        enrolment.campaign_id == campaign.id,
        enrolment.status == EnrolmentStatus.ACTIVE,
        ~exists().where(Message.enrolment_id == enrolment.id),
    )
    return queue_messages(session, rows, now)


def send_broadcast(
    session: Session, campaign: Campaign, now: datetime, team_zone: str = "UTC"
) -> int:
    """Create the messages of a broadcast that are due now; returns how many it created.

    Idempotent: whoever already has an enrolment in the broadcast is never given another, so a
    pass run twice, or by two schedulers at once, creates nothing more.
    """
    if campaign.kind != CampaignKind.BROADCAST or not campaign.steps:
        return 0
    # Two schedulers: the second waits here, then sees what the first inserted.
    sent = session.scalar(
        select(Campaign.sent_at).where(Campaign.id == campaign.id).with_for_update()
    )
    if sent is not None:
        return 0
    audience = _audience(session, campaign, now)
    if audience is None:
        return 0
    start = campaign.scheduled_at or now
    where = _members(campaign, audience)
    if not campaign.local_time:
        if start > now:
            return 0
        _enrol(session, campaign, where, now)
        done = True
    else:
        # Group the audience's zones (few) in Python; each zone's members go in one statement.
        names = session.scalars(select(Candidate.timezone).distinct().where(*where)).all()
        by_zone: dict[str, list[str]] = defaultdict(list)
        for name in names:
            by_zone[zone(name, team_zone).key].append(name)
        wall = start.replace(tzinfo=None)
        for key, raw in by_zone.items():
            if local_instant(wall.date(), wall.time(), zone(key)) <= now:
                _enrol(session, campaign, [*where, Candidate.timezone.in_(raw)], now)
        done = now >= start + LATEST + timedelta(hours=1)
    created = _create_messages(session, campaign, now)
    if done:
        campaign.sent_at = now
    return created


def run_broadcasts(session: Session, now: datetime, team_zone: str = "UTC") -> int:
    """The periodic pass: send every active broadcast that is due; returns messages created."""
    campaigns = session.scalars(
        select(Campaign)
        .where(
            Campaign.kind == CampaignKind.BROADCAST,
            Campaign.status == CampaignStatus.ACTIVE,
            Campaign.sent_at.is_(None),
            (Campaign.scheduled_at.is_(None)) | (Campaign.scheduled_at <= now + EARLIEST),
        )
        .order_by(Campaign.id)
    ).all()
    created = 0
    for campaign in campaigns:
        created += send_broadcast(session, campaign, now, team_zone)
        session.commit()
    return created


# --- creating one and watching it go out ---------------------------------------------------------


def create_broadcast(
    session: Session, data: BroadcastIn | Mapping[str, Any], library: TemplateLibrary, now: datetime
) -> Campaign:
    """Validate and store a broadcast; activated (scheduled) unless ``"activate": false``."""
    given = data if isinstance(data, BroadcastIn) else parse(BroadcastIn, data, message=INVALID)
    try:
        campaign = campaign_service.create_campaign(session, given.campaign(), library, now)
    except ValidationError as exc:
        # Speak the broadcast's own words: "template", not "steps[0].template".
        fields = {
            key.removeprefix("steps[0].").replace("entry", "audience", 1): problem
            for key, problem in exc.fields.items()
        }
        raise ValidationError(INVALID, fields) from None
    if given.activate:
        campaign_service.set_status(session, campaign, CampaignStatus.ACTIVE, now)
    return campaign


def progress(session: Session, campaign: Campaign, now: datetime) -> dict[str, Any]:
    """How far a broadcast has gone: its audience, and its messages by state."""
    states = dict(
        session.execute(
            select(Message.state, func.count())
            .where(Message.campaign_id == campaign.id)
            .group_by(Message.state)
        ).all()
    )
    audience = None
    condition = _audience(session, campaign, now)
    if condition is not None and campaign.sent_at is None:
        # Before it goes: who would get it now (after that, the messages tell).
        audience = session.scalar(
            select(func.count()).select_from(Candidate).where(*_members(campaign, condition))
        )
    return {
        "status": campaign.status,
        "sent_at": campaign.sent_at.isoformat() if campaign.sent_at else None,
        "waiting_audience": audience,
        "messages": {state: states.get(state, 0) for state in MessageState},
        "total": sum(states.values()),
    }


# --- the admin's check before it schedules one ---------------------------------------------------


def check_broadcast(
    session: Session,
    data: dict[str, Any],
    library: TemplateLibrary,
    now: datetime,
    timing: Timing | None = None,
) -> dict[str, Any]:
    """Check a broadcast as ``create_broadcast`` does, store nothing, and say whom it reaches now.

    Stricter than the API, for someone about to press "send": a scheduled time given empty or
    already past, an audience in which nobody can receive it, and a mail that still holds a
    starter's sample copy are errors too. Returns the audience count, one of its members (for a
    preview), how many of them the frequency cap holds (with ``timing``), the schedule as
    stored, and whether some zones are already past a local hour.
    """
    errors: dict[str, str] = {}
    if "scheduled_at" in data and data["scheduled_at"] in (None, ""):
        errors["scheduled_at"] = "choose a date and time, or send it now"
    answer: dict[str, Any] = {}
    # Written to count its audience with the pass's own rules, then undone.
    savepoint = session.begin_nested()
    try:
        campaign = create_broadcast(session, {**data, "activate": False}, library, now)
        start, local = campaign.scheduled_at, campaign.local_time
        if start is not None and not local and start <= now:
            errors["scheduled_at"] = "that time has passed; choose a later one, or send it now"
        elif start is not None and local and start + LATEST <= now:
            errors["scheduled_at"] = "that hour has passed in every time zone; choose a later one"
        audience = progress(session, campaign, now)["waiting_audience"] or 0
        template = data.get("template") or ""
        copy = sample_copy(library, named_html(library, template) if template else "")
        if copy:
            errors["template"] = copy
        condition = _audience(session, campaign, now)
        members = (
            select(Candidate.id).where(*_members(campaign, condition))
            if condition is not None
            else select(Candidate.id).where(false())
        )
        first = session.scalar(members.order_by(Candidate.id.desc()).limit(1))
        capped = (
            campaign_service.at_the_cap(session, members, timing, now)
            if timing is not None and timing.cap_for(campaign.steps[0].category) is not None
            else {"held": 0, "until": None, "cap": None}
        )
        if not audience:
            errors.setdefault(
                "audience",
                "nobody in this audience can receive it: no active candidate in it "
                f"who wants the {campaign.topic.replace('_', ' ')} topic",
            )
        answer = {
            "audience": audience,
            "sample_id": first,
            "capped": capped,
            "scheduled_at": start,
            "local_time": local,
            "topic": campaign.topic,
            # At a local hour: zones east of here already passed it and get it at once.
            "some_zones_now": bool(local and start is not None and start - EARLIEST <= now),
        }
    except ValidationError as exc:
        errors = {**errors, **exc.fields}
    finally:
        savepoint.rollback()
    if errors:
        raise ValidationError("the broadcast is not valid", errors)
    return answer
