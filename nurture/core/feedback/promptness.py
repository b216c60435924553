"""Rejection promptness: how long a rejected candidate waits for our first mail, in SQL.

Measured from each ``candidate.rejected`` event (``ats_events``) to the first ``messages`` row
sent to that candidate at or after it. Percentiles are nearest-rank, computed with window
functions, so the same query runs on SQLite and PostgreSQL and nothing is loaded per candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Subquery,
    and_,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float

from nurture.core.errors import ValidationError
from nurture.models.ats import AtsEvent
from nurture.models.base import UTCDateTime
from nurture.models.campaigns import Campaign, CampaignStatus, Enrolment, EnrolmentStatus
from nurture.models.candidates import Candidate, CandidateStatus
from nurture.models.messages import Message, MessageState
from nurture.models.settings import TeamSetting
from nurture.models.users import User

TARGET_KEY = "rejection_target"
DEFAULT_TARGET_HOURS = 48
TARGET_RANGE = (1, 720)  # an hour to a month
# A queued mail not sent for this long is stuck (no worker, or the relay keeps failing).
STUCK = timedelta(minutes=15)
NO_CAMPAIGN = "No campaign matched"
NO_RECRUITER = "No recruiter"


class seconds_between(FunctionElement[float]):  # noqa: N801 - used like a SQL function
    """``later - earlier`` in seconds, in each database's own arithmetic."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between)
def _seconds_postgresql(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


# --- the target ------------------------------------------------------------------------------


def target_hours(session: Session, default: int | float | None = None) -> float:
    """The team's target in hours: set in the admin, else NURTURE_REJECTION_TARGET_HOURS."""
    row = session.get(TeamSetting, TARGET_KEY)
    if row is not None and isinstance(row.value.get("hours"), int | float):
        return float(row.value["hours"])
    return float(default if default is not None else DEFAULT_TARGET_HOURS)


def validate_target(value: Any) -> float:
    """Hours from a form or JSON body, or ValidationError at ``hours``."""
    low, high = TARGET_RANGE
    try:
        hours = float(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError(
            "the target is not a number", {"hours": f"give a number of hours ({low} to {high})"}
        ) from None
    if not low <= hours <= high or hours != hours:
        raise ValidationError(
            "the target is out of range", {"hours": f"must be between {low} and {high} hours"}
        )
    return hours


def set_target(session: Session, value: Any, user: User | None, now: datetime) -> float:
    """Save the team's target (in hours); returns it."""
    hours = validate_target(value)
    row = session.get(TeamSetting, TARGET_KEY)
    if row is None:
        row = TeamSetting(key=TARGET_KEY, value={}, updated_at=now)
        session.add(row)
    row.value = {"hours": int(hours) if hours.is_integer() else hours}
    row.updated_at = now
    row.updated_by_id = user.id if user is not None else None
    return hours


# --- the numbers -----------------------------------------------------------------------------


def _first_mail() -> ColumnElement[Any]:
    """The first mail sent to the event's candidate at or after the event (correlated)."""
    return (
        select(func.min(Message.sent_at))
        .where(
            Message.candidate_id == AtsEvent.candidate_id,
            Message.state == MessageState.SENT,
            Message.sent_at >= AtsEvent.received_at,
        )
        .correlate(AtsEvent)
        .scalar_subquery()
    )


def _rejections(since: datetime) -> Subquery:
    """One row per rejection since ``since``: its groups, wait (NULL until mailed), age."""
    first = _first_mail()
    return (
        select(
            AtsEvent.id.label("event_id"),
            AtsEvent.candidate_id,
            AtsEvent.received_at,
            func.coalesce(Campaign.name, literal(NO_CAMPAIGN)).label("campaign"),
            AtsEvent.campaign_id,
            func.coalesce(
                func.nullif(AtsEvent.recruiter_name, ""),
                func.nullif(AtsEvent.recruiter_email, ""),
                literal(NO_RECRUITER),
            ).label("recruiter"),
            first.label("first_sent_at"),
            seconds_between(first, AtsEvent.received_at).label("wait"),
            Candidate.status.label("status"),
        )
        .join(Candidate, Candidate.id == AtsEvent.candidate_id)
        .outerjoin(Campaign, Campaign.id == AtsEvent.campaign_id)
        .where(AtsEvent.type == "candidate.rejected", AtsEvent.received_at >= since)
        .subquery()
    )


@dataclass(frozen=True)
class Row:
    """Promptness of one group (a campaign, a recruiter, or everyone)."""

    name: str
    rejections: int
    mailed: int
    within_target: int
    waiting: int  # not mailed yet and past the target
    p50_hours: float | None
    p95_hours: float | None

    @property
    def within_share(self) -> float | None:
        """Of the rejections mailed or overdue, the share mailed within the target."""
        judged = self.mailed + self.waiting
        return round(100 * self.within_target / judged, 1) if judged else None

    def as_dict(self) -> dict[str, Any]:
        """For the API."""
        return {
            "name": self.name,
            "rejections": self.rejections,
            "mailed": self.mailed,
            "within_target": self.within_target,
            "waiting_over_target": self.waiting,
            "p50_hours": self.p50_hours,
            "p95_hours": self.p95_hours,
            "within_target_percent": self.within_share,
        }


def _hours(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 1)


def _grouped(
    session: Session, rejections: Subquery, key: Any, now: datetime, target: float
) -> list[Row]:
    """Counts and nearest-rank p50/p95 of the wait per value of ``key`` (None: everyone)."""
    limit = target * 3600
    now_value = literal(now, UTCDateTime())
    group = key if key is not None else literal("all")
    overdue = and_(
        rejections.c.wait.is_(None),
        rejections.c.status == CandidateStatus.ACTIVE,
        seconds_between(now_value, rejections.c.received_at) > limit,
    )
    mailed = rejections.c.wait.is_not(None)
    ranked = select(
        group.label("g"),
        rejections.c.wait,
        case((mailed, 1), else_=0).label("mailed"),
        case((and_(mailed, rejections.c.wait <= limit), 1), else_=0).label("within"),
        case((overdue, 1), else_=0).label("overdue"),
        # Mailed ones ranked by wait; the unmailed sort after them and are never picked.
        func.row_number()
        .over(partition_by=group, order_by=(case((mailed, 0), else_=1), rejections.c.wait))
        .label("rn"),
        func.sum(case((mailed, 1), else_=0)).over(partition_by=group).label("n"),
    ).subquery()

    def rank(percent: int) -> ColumnElement[Any]:
        # Nearest rank: ceil(p × n) with integers only, the same on both databases.
        return func.max(case((ranked.c.rn == (percent * ranked.c.n + 99) // 100, ranked.c.wait)))

    rows = session.execute(
        select(
            ranked.c.g,
            func.count(),
            func.sum(ranked.c.mailed),
            func.sum(ranked.c.within),
            func.sum(ranked.c.overdue),
            rank(50),
            rank(95),
        )
        .group_by(ranked.c.g)
        .order_by(func.sum(ranked.c.overdue).desc(), func.count().desc(), ranked.c.g)
    ).all()
    return [
        Row(str(g), n, int(m or 0), int(w or 0), int(o or 0), _hours(p50), _hours(p95))
        for g, n, m, w, o, p50, p95 in rows
    ]


@dataclass(frozen=True)
class Promptness:
    """The dashboard's panel and the promptness page: overall, per campaign, per recruiter."""

    target_hours: float
    days: int
    overall: Row
    campaigns: list[Row]
    recruiters: list[Row]

    @property
    def waiting(self) -> int:
        """Rejected candidates still without a mail, past the target: the banner's number."""
        return self.overall.waiting

    def as_dict(self) -> dict[str, Any]:
        """For the API."""
        return {
            "target_hours": self.target_hours,
            "days": self.days,
            "overall": self.overall.as_dict(),
            "campaigns": [row.as_dict() for row in self.campaigns],
            "recruiters": [row.as_dict() for row in self.recruiters],
        }


def promptness(session: Session, now: datetime, target: float, days: int = 30) -> Promptness:
    """Time from rejection to first mail over the last ``days`` days, three ways."""
    rejections = _rejections(now - timedelta(days=days))
    overall = _grouped(session, rejections, None, now, target)
    empty = Row("all", 0, 0, 0, 0, None, None)
    return Promptness(
        target,
        days,
        overall[0] if overall else empty,
        _grouped(session, rejections, rejections.c.campaign, now, target),
        _grouped(session, rejections, rejections.c.recruiter, now, target),
    )


# --- who is waiting, and why -----------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """A rejected candidate past the target with no mail yet, and the likeliest reason."""

    candidate_id: int
    name: str
    email: str
    recruiter: str
    campaign: str
    campaign_id: int | None
    rejected_at: datetime
    waited_hours: float
    reason: str  # no_campaign, campaign_paused, failed, stuck, deferred, scheduled, ...
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """For the API."""
        return {
            "candidate_id": self.candidate_id,
            "email": self.email,
            "recruiter": self.recruiter,
            "campaign": self.campaign,
            "campaign_id": self.campaign_id,
            "rejected_at": self.rejected_at.isoformat(),
            "waited_hours": self.waited_hours,
            "reason": self.reason,
            "detail": self.detail,
        }


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "?"


def waiting(
    session: Session, now: datetime, target: float, days: int = 30, limit: int = 200
) -> tuple[list[Waiting], int]:
    """The rejected candidates past the target without a mail (longest wait first), and how
    many there are in all; each says why, read from their enrolment and queued mail."""
    rejections = _rejections(now - timedelta(days=days))
    now_value = literal(now, UTCDateTime())
    overdue = and_(
        rejections.c.wait.is_(None),
        rejections.c.status == CandidateStatus.ACTIVE,
        seconds_between(now_value, rejections.c.received_at) > target * 3600,
    )
    total = session.scalar(select(func.count()).select_from(rejections).where(overdue)) or 0
    # Their enrolment from this rejection, and its latest mail (aliases: the outer query joins
    # the same tables, which would otherwise swallow the subqueries' FROM).
    enrolled, queued = aliased(Enrolment), aliased(Message)
    enrolment = (
        select(enrolled.id)
        .where(
            enrolled.candidate_id == rejections.c.candidate_id,
            enrolled.campaign_id == rejections.c.campaign_id,
            enrolled.created_at >= rejections.c.received_at,
        )
        .order_by(enrolled.id)
        .limit(1)
        .correlate(rejections)
        .scalar_subquery()
    )
    latest_message = (
        select(queued.id)
        .where(
            queued.candidate_id == rejections.c.candidate_id,
            queued.campaign_id == rejections.c.campaign_id,
            queued.queued_at >= rejections.c.received_at,
        )
        .order_by(queued.id.desc())
        .limit(1)
        .correlate(rejections)
        .scalar_subquery()
    )
    page = session.execute(
        select(
            rejections.c.candidate_id,
            rejections.c.received_at,
            rejections.c.campaign,
            rejections.c.campaign_id,
            rejections.c.recruiter,
            Candidate.first_name,
            Candidate.last_name,
            Candidate.email,
            Campaign.status.label("campaign_status"),
            Enrolment.status.label("enrolment_status"),
            Enrolment.next_send_at,
            Enrolment.exit_reason,
            Message.state.label("message_state"),
            Message.error,
            Message.queued_at,
            Message.retry_at,
        )
        .join(Candidate, Candidate.id == rejections.c.candidate_id)
        .outerjoin(Campaign, Campaign.id == rejections.c.campaign_id)
        .outerjoin(Enrolment, Enrolment.id == enrolment)
        .outerjoin(Message, Message.id == latest_message)
        .where(overdue)
        .order_by(rejections.c.received_at, rejections.c.event_id)
        .limit(limit)
    ).all()
    rows = []
    for row in page:
        reason, detail = _reason(row, now)
        waited = (now - row.received_at).total_seconds() / 3600
        name = " ".join(p for p in (row.first_name, row.last_name) if p)
        rows.append(
            Waiting(
                row.candidate_id,
                name,
                row.email,
                row.recruiter,
                row.campaign,
                row.campaign_id,
                row.received_at,
                round(waited, 1),
                reason,
                detail,
            )  # fmt: skip
        )
    return rows, total


def _reason(row: Any, now: datetime) -> tuple[str, str]:
    """Why no mail has gone yet, from what the database says about the candidate's way."""
    if row.campaign_id is None:
        return "no_campaign", (
            "No active campaign starts on candidate.rejected for them (check the entry filters)."
        )
    if row.campaign_status != CampaignStatus.ACTIVE:
        return f"campaign_{row.campaign_status}", f"“{row.campaign}” is {row.campaign_status}."
    state = row.message_state
    if state == MessageState.FAILED:
        return "failed", f"The first mail failed: {row.error or 'no reason recorded'}."
    if state == MessageState.SKIPPED:
        return "skipped", f"The first mail was skipped: {row.error or 'no reason recorded'}."
    if state in (MessageState.QUEUED, MessageState.SENDING):
        if row.retry_at is not None and row.retry_at > now:
            return "deferred", (
                f"Held back until {_when(row.retry_at)} "
                f"({row.error or 'send window, frequency cap or pause'})."
            )
        if row.queued_at is not None and now - row.queued_at > STUCK:
            return "stuck", (
                f"Queued since {_when(row.queued_at)} but not sent: is a worker running, "
                "and is the SMTP relay answering?"
            )
        return "sending", "Queued: it should go out within minutes."
    if row.enrolment_status == EnrolmentStatus.ACTIVE:
        if row.next_send_at is not None and row.next_send_at > now:
            return "scheduled", (
                f"The first step is due {_when(row.next_send_at)}: its delay is longer than "
                "the target."
            )
        return "scheduler", (
            f"Due since {_when(row.next_send_at)} but not queued: is the scheduler running?"
        )
    if row.enrolment_status is not None:
        exit_reason = (row.exit_reason or row.enrolment_status).replace("_", " ")
        return "ended", f"Left “{row.campaign}” before the first mail ({exit_reason})."
    return "not_enrolled", f"Not enrolled in “{row.campaign}”."
