"""How far behind sending is, read from the ledger (the source of truth, not Redis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session

from nurture.models import (
    Campaign,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    Message,
    MessageState,
)


@dataclass(frozen=True)
class QueueSnapshot:
    """The send queue as the ledger has it at ``now``."""

    now: datetime
    # Queued, of an active campaign and due: what workers should be sending now.
    due: int
    # Queued but not yet: a retry after a failure, a send window, the cap, a paused campaign.
    waiting: int
    # Claimed by a worker and not finished.
    sending: int
    # When the longest-waiting due mail became due (its retry time, or when it was queued).
    oldest_due_at: datetime | None
    # Active enrolments past their next step's time without a message yet: the scheduler's lag.
    overdue_enrolments: int
    oldest_overdue_at: datetime | None

    @property
    def oldest_due_age(self) -> float:
        """Seconds the oldest due mail has waited (0 when none waits)."""
        return _age(self.now, self.oldest_due_at)

    @property
    def scheduler_lag(self) -> float:
        """Seconds the most overdue enrolment has waited for the scheduler (0 when none)."""
        return _age(self.now, self.oldest_overdue_at)


def _age(now: datetime, since: datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


def queue_snapshot(session: Session, now: datetime) -> QueueSnapshot:
    """Count queued and claimed mail and find the oldest due one: two indexed queries."""
    due_since = func.coalesce(Message.retry_at, Message.queued_at)
    is_due = and_(
        Message.state == MessageState.QUEUED,
        Campaign.status == CampaignStatus.ACTIVE,
        or_(Message.retry_at.is_(None), Message.retry_at <= now),
    )
    due, oldest, waiting, sending = session.execute(
        select(
            func.count().filter(is_due),
            func.min(due_since).filter(is_due),
            func.count().filter(and_(Message.state == MessageState.QUEUED, not_(is_due))),
            func.count().filter(Message.state == MessageState.SENDING),
        )
        .select_from(Message)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(Message.state.in_([MessageState.QUEUED, MessageState.SENDING]))
    ).one()
    overdue, oldest_overdue = session.execute(
        select(func.count(), func.min(Enrolment.next_send_at))
        .select_from(Enrolment)
        .join(Campaign, Campaign.id == Enrolment.campaign_id)
        .where(
            Enrolment.status == EnrolmentStatus.ACTIVE,
            Enrolment.next_send_at <= now,
            Campaign.status == CampaignStatus.ACTIVE,
        )
    ).one()
    return QueueSnapshot(
        now=now,
        due=due or 0,
        waiting=waiting or 0,
        sending=sending or 0,
        oldest_due_at=_aware(oldest),
        overdue_enrolments=overdue or 0,
        oldest_overdue_at=_aware(oldest_overdue),
    )


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates lose the column type on SQLite: give back an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
