"""Numbers for the dashboard and campaign pages, counted in SQL (never a loop over events).

Days are UTC calendar days. Machine opens and clicks (privacy proxies, link scanners) never count
as engagement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    and_,
    cast,
    distinct,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    Enrolment,
    EnrolmentStatus,
    Event,
    EventKind,
    Message,
    MessageState,
    Step,
)
from nurture.models.campaigns import BEFORE_ACTIVATION

ENGAGED_DAYS = 30
ENGAGEMENT = (EventKind.OPEN, EventKind.CLICK)


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, in the database's own dialect."""
    if session.get_bind().dialect.name == "postgresql":
        # A literal unit, not a bound parameter: GROUP BY must repeat the very same expression.
        return cast(func.date_trunc(literal_column("'day'"), column), Date)
    return func.date(column)  # SQLite keeps timestamps as UTC text: 'YYYY-MM-DD HH:MM:SS'


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def plural(count: int, noun: str) -> str:
    """``1 candidate``, ``3 candidates``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def network_health(session: Session, now: datetime) -> dict[str, int]:
    """Candidates by status, those engaged in the last 30 days, and mail sent in the last 7."""
    by_status = dict(
        session.execute(select(Candidate.status, func.count()).group_by(Candidate.status)).all()
    )
    engaged = session.scalar(
        select(func.count(distinct(Event.candidate_id))).where(
            Event.kind.in_(ENGAGEMENT),
            Event.machine.is_(False),
            Event.created_at >= now - timedelta(days=ENGAGED_DAYS),
            Event.created_at <= now,
        )
    )
    sent_7d = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.state == MessageState.SENT,
            Message.sent_at >= now - timedelta(days=7),
            Message.sent_at <= now,
        )
    )
    return {
        "total": sum(count for status, count in by_status.items() if status != "erased"),
        "active": by_status.get("active", 0),
        "unsubscribed": by_status.get("unsubscribed", 0),
        "bounced": by_status.get("bounced", 0),
        "complained": by_status.get("complained", 0),
        "hired": by_status.get("hired", 0),
        "engaged_30d": engaged or 0,
        "sent_7d": sent_7d or 0,
    }


def daily_series(
    session: Session, now: datetime, days: int = 30, campaign_id: int | None = None
) -> list[dict[str, Any]]:
    """Per UTC day up to today: mail sent, and unique candidates who opened or clicked."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start, end = _midnight(first), _midnight(today + timedelta(days=1))
    series = {
        first + timedelta(days=n): {"sent": 0, "opened": 0, "clicked": 0} for n in range(days)
    }

    sent_day = _day(session, Message.sent_at).label("day")
    sent = select(sent_day, func.count()).where(
        Message.state == MessageState.SENT, Message.sent_at >= start, Message.sent_at < end
    )
    if campaign_id is not None:
        sent = sent.where(Message.campaign_id == campaign_id)
    for day, count in session.execute(sent.group_by(sent_day)):
        series[_as_date(day)]["sent"] = count

    event_day = _day(session, Event.created_at).label("day")
    events = select(event_day, Event.kind, func.count(distinct(Event.candidate_id))).where(
        Event.kind.in_(ENGAGEMENT),
        Event.machine.is_(False),
        Event.created_at >= start,
        Event.created_at < end,
    )
    if campaign_id is not None:
        events = events.join(Message, Message.id == Event.message_id).where(
            Message.campaign_id == campaign_id
        )
    names = {EventKind.OPEN: "opened", EventKind.CLICK: "clicked"}
    for day, kind, count in session.execute(events.group_by(event_day, Event.kind)):
        series[_as_date(day)][names[EventKind(kind)]] = count

    return [{"day": day.isoformat(), **counts} for day, counts in series.items()]


def campaign_overview(
    session: Session, now: datetime, status: str | None = None
) -> list[dict[str, Any]]:
    """Every campaign (or those with ``status``) with its steps, enrolments and recent sends."""
    query = select(Campaign).order_by(Campaign.updated_at.desc(), Campaign.id.desc())
    if status:
        query = query.where(Campaign.status == status)
    campaigns = session.scalars(query).all()
    ids = [c.id for c in campaigns]
    if not ids:
        return []
    steps = dict(
        session.execute(
            select(Step.campaign_id, func.count())
            .where(Step.campaign_id.in_(ids))
            .group_by(Step.campaign_id)
        ).all()
    )
    enrolled: dict[int, dict[str, int]] = {}
    for campaign_id, enrolment_status, count in session.execute(
        select(Enrolment.campaign_id, Enrolment.status, func.count())
        .where(Enrolment.campaign_id.in_(ids), Enrolment.exit_reason != BEFORE_ACTIVATION)
        .group_by(Enrolment.campaign_id, Enrolment.status)
    ):
        enrolled.setdefault(campaign_id, {})[enrolment_status] = count
    sent = dict(
        session.execute(
            select(Message.campaign_id, func.count())
            .where(
                Message.campaign_id.in_(ids),
                Message.state == MessageState.SENT,
                Message.sent_at >= now - timedelta(days=7),
            )
            .group_by(Message.campaign_id)
        ).all()
    )
    return [
        {
            "campaign": c,
            "steps": steps.get(c.id, 0),
            "enrolled": sum(enrolled.get(c.id, {}).values()),
            "active": enrolled.get(c.id, {}).get(EnrolmentStatus.ACTIVE, 0),
            "sent_7d": sent.get(c.id, 0),
        }
        for c in campaigns
    ]


def enrolment_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """A campaign's enrolments by status (active, completed, exited) and in all."""
    counts = dict(
        session.execute(
            select(Enrolment.status, func.count())
            .where(Enrolment.campaign_id == campaign_id, Enrolment.exit_reason != BEFORE_ACTIVATION)
            .group_by(Enrolment.status)
        ).all()
    )
    return {
        "total": sum(counts.values()),
        **{status.value: counts.get(status, 0) for status in EnrolmentStatus},
    }


def status_counts(session: Session) -> dict[str, int]:
    """How many campaigns are in each status."""
    return dict(
        session.execute(select(Campaign.status, func.count()).group_by(Campaign.status)).all()
    )


# Why queued mail waits (``Message.error`` as sending records it), as the dashboard says it.
HELD = {
    "frequency cap": "held by the frequency cap",
    "send window": "waiting for the send window",
    "paused": "held: the candidates paused their mail",
    "": "waiting for the relay's rate limit",
}


def _as_utc(value: Any) -> datetime | None:
    """min() of a UTC column, as the database answers it (text on SQLite)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    aware: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware


@dataclass(frozen=True)
class Attention:
    """A campaign someone should look at, and why."""

    campaign_id: int
    name: str
    status: str
    reason: str
    severity: str  # "bad" or "warn", for the badge colour


def campaigns_needing_attention(
    session: Session,
    now: datetime,
    *,
    max_rate: float = 0.05,
    min_sent: int = 20,
    idle_days: int = 14,
    draft_days: int = 7,
    failure_days: int = 30,
    stuck_after: timedelta = timedelta(minutes=15),
) -> list[Attention]:
    """Held and stuck mail, paused campaigns holding candidates, failing or bouncing ones, idle
    ones and old drafts."""
    live = select(Campaign.id).where(Campaign.status != CampaignStatus.ARCHIVED)
    campaigns = {
        c.id: c
        for c in session.scalars(select(Campaign).where(Campaign.status != CampaignStatus.ARCHIVED))
    }
    found: list[Attention] = []

    def note(campaign_id: int, reason: str, severity: str) -> None:
        c = campaigns[campaign_id]
        found.append(Attention(c.id, c.name, c.status, reason, severity))

    failures = session.execute(
        select(Message.campaign_id, func.count())
        .where(
            Message.campaign_id.in_(live),
            Message.state == MessageState.FAILED,
            Message.queued_at >= now - timedelta(days=failure_days),
        )
        .group_by(Message.campaign_id)
    )
    for campaign_id, count in failures:
        note(
            campaign_id, f"{plural(count, 'message')} failed in the last {failure_days} days", "bad"
        )

    sent = dict(
        session.execute(
            select(Message.campaign_id, func.count(distinct(Message.candidate_id)))
            .where(Message.campaign_id.in_(live), Message.state == MessageState.SENT)
            .group_by(Message.campaign_id)
        ).all()
    )
    bad_events = session.execute(
        select(Message.campaign_id, Event.kind, func.count(distinct(Event.candidate_id)))
        .join(Event, Event.message_id == Message.id)
        .where(
            Message.campaign_id.in_(live),
            Event.kind.in_([EventKind.BOUNCE, EventKind.UNSUBSCRIBE]),
        )
        .group_by(Message.campaign_id, Event.kind)
    )
    for campaign_id, kind, count in bad_events:
        total = sent.get(campaign_id, 0)
        if total >= min_sent and count / total > max_rate:
            what = "bounce" if kind == EventKind.BOUNCE else "unsubscribe"
            note(
                campaign_id,
                f"{what} rate {100 * count / total:.1f}% ({count} of {total} sent)",
                "bad",
            )

    # Mail held back for later (frequency cap, send window, the candidate's pause, a retry).
    held = session.execute(
        select(Message.campaign_id, Message.error, func.count(), func.min(Message.retry_at))
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(
            Campaign.status == CampaignStatus.ACTIVE,
            Message.state == MessageState.QUEUED,
            Message.retry_at > now,
        )
        .group_by(Message.campaign_id, Message.error)
    )
    for campaign_id, error, count, first in held:
        why = HELD.get(error or "", "waiting to retry after a temporary failure")
        first = _as_utc(first)
        until = (
            f", the first until {first.strftime('%d %b %H:%M UTC').lstrip('0')}" if first else ""
        )
        note(campaign_id, f"{plural(count, 'mail')} {why}{until}", "warn")

    # Mail due but not moving: no worker took it, or one died holding it.
    stuck = session.execute(
        select(Message.campaign_id, func.count())
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(
            Campaign.status == CampaignStatus.ACTIVE,
            or_(
                and_(
                    Message.state == MessageState.QUEUED,
                    or_(Message.retry_at.is_(None), Message.retry_at <= now - stuck_after),
                    Message.queued_at <= now - stuck_after,
                ),
                and_(
                    Message.state == MessageState.SENDING,
                    Message.claimed_at <= now - stuck_after,
                ),
            ),
        )
        .group_by(Message.campaign_id)
    )
    minutes = int(stuck_after.total_seconds() // 60)
    for campaign_id, count in stuck:
        note(
            campaign_id,
            f"{plural(count, 'mail')} due for over {minutes} minutes and not sent: "
            "is a worker running?",
            "bad",
        )

    waiting = session.execute(
        select(Enrolment.campaign_id, func.count())
        .join(Campaign, Campaign.id == Enrolment.campaign_id)
        .where(Campaign.status == CampaignStatus.PAUSED, Enrolment.status == EnrolmentStatus.ACTIVE)
        .group_by(Enrolment.campaign_id)
    )
    for campaign_id, count in waiting:
        note(
            campaign_id,
            f"paused with {plural(count, 'candidate')} waiting for their next mail",
            "warn",
        )

    recent = select(Message.campaign_id).where(
        Message.state == MessageState.SENT, Message.sent_at >= now - timedelta(days=idle_days)
    )
    idle = session.scalars(
        select(Campaign.id).where(
            Campaign.status == CampaignStatus.ACTIVE,
            # Only campaigns live that long: a drip activated yesterday may not be due yet.
            Campaign.updated_at < now - timedelta(days=idle_days),
            Campaign.id.not_in(recent),
        )
    )
    for campaign_id in idle:
        note(campaign_id, f"active, but nothing sent in the last {idle_days} days", "warn")

    drafts = session.execute(
        select(Campaign.id, Campaign.created_at).where(
            Campaign.status == CampaignStatus.DRAFT,
            Campaign.created_at < now - timedelta(days=draft_days),
        )
    )
    for campaign_id, created_at in drafts:
        age = (now - created_at).days
        note(campaign_id, f"a draft for {age} days: activate it or archive it", "warn")

    order = {"bad": 0, "warn": 1}
    return sorted(found, key=lambda a: (order[a.severity], a.name.lower(), a.campaign_id))
