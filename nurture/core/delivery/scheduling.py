"""The scheduler: turn due enrolments into message rows, and find messages that need a job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from nurture.core.campaigns import broadcasts
from nurture.core.campaigns.enrolment import queue_messages
from nurture.core.delivery.leases import forget_dead_workers, live_workers
from nurture.models import (
    Campaign,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    Message,
    MessageState,
    Step,
)
from nurture.models.base import rows_changed

# Hands batches of message ids to the queue, all of them or (raising) none.
Enqueue = Callable[[Sequence[Sequence[int]]], None]


@dataclass
class TickResult:
    """What one scheduler pass did."""

    created: int = 0
    enqueued: int = 0
    completed: int = 0
    # Claimed rows handed back: their worker's heartbeat stopped, or (no worker named) stuck.
    recovered: int = 0


# The step an enrolment is waiting for: its campaign's step at ``next_position``.
_NEXT_STEP = and_(
    Step.campaign_id == Enrolment.campaign_id, Step.position == Enrolment.next_position
)


def create_due_messages(session: Session, now: datetime, batch_size: int = 5000) -> tuple[int, int]:
    """Create one queued message per due enrolment, batch by batch; returns (created, completed).

    Each batch is four statements whatever its size: lock the due enrolments' ids, INSERT …
    SELECT their messages in the database, complete those whose step was removed, clear their
    due time. The unique key on (enrolment, step) makes this safe to run from several
    schedulers at once; on PostgreSQL ``SKIP LOCKED`` also keeps them from waiting on each other.
    """
    created = completed = 0
    while True:
        due = session.scalars(
            select(Enrolment.id)
            .join(Campaign, Campaign.id == Enrolment.campaign_id)
            .where(
                Enrolment.status == EnrolmentStatus.ACTIVE,
                Enrolment.next_send_at <= now,
                Campaign.status == CampaignStatus.ACTIVE,
            )
            .order_by(Enrolment.next_send_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True, of=Enrolment)
        ).all()
        if not due:
            break
        created += queue_messages(
            session,
            select(Enrolment.candidate_id, Enrolment.campaign_id, Step.id, Enrolment.id)
            .join(Step, _NEXT_STEP)
            .where(Enrolment.id.in_(due)),
            now,
        )
        # A step was removed: nothing left to send.
        finished = session.execute(
            update(Enrolment)
            .where(Enrolment.id.in_(due), ~exists().where(_NEXT_STEP))
            .values(status=EnrolmentStatus.COMPLETED, ended_at=now)
            .execution_options(preserve_rowcount=True)
        )
        completed += rows_changed(finished)
        session.execute(update(Enrolment).where(Enrolment.id.in_(due)).values(next_send_at=None))
        session.commit()
    return created, completed


def recover_stuck(session: Session, now: datetime, stuck_after: timedelta) -> int:
    """Messages left in ``sending`` by a sender without a heartbeat go back to the queue.

    Claims that name a worker are the heartbeat's business (``recover_orphans``): a live
    worker's rows are never taken from it, however slowly it sends.
    """
    result = session.execute(
        update(Message)
        .where(
            Message.state == MessageState.SENDING,
            Message.claimed_by.is_(None),
            Message.claimed_at < now - stuck_after,
        )
        .values(state=MessageState.QUEUED, enqueued_at=None)
    )
    session.commit()
    return rows_changed(result)


def recover_orphans(session: Session, lease_seconds: float) -> int:
    """Messages claimed by workers whose heartbeat is older than the lease go back to the queue.

    Ages are by the database's clock. A worker whose beat is that old stopped sending under
    its claims (see ``core/delivery/leases``); the one mail it may have had in the relay's
    hands is the documented window, resent with the same Message-ID.
    """
    result = session.execute(
        update(Message)
        .where(
            Message.state == MessageState.SENDING,
            Message.claimed_by.is_not(None),
            Message.claimed_by.not_in(live_workers(lease_seconds)),
        )
        .values(state=MessageState.QUEUED, enqueued_at=None, claimed_by=None)
    )
    forget_dead_workers(session)
    session.commit()
    return rows_changed(result)


def messages_to_enqueue(
    session: Session, now: datetime, requeue_after: timedelta, limit: int = 10000
) -> list[int]:
    """Queued messages of active campaigns that have no job, or whose job seems lost."""
    return list(
        session.scalars(
            select(Message.id)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(
                Message.state == MessageState.QUEUED,
                Campaign.status == CampaignStatus.ACTIVE,
                or_(
                    Message.enqueued_at.is_(None),
                    and_(Message.enqueued_at < now - requeue_after),
                ),
                # Deferred (send window, cap, pause) or waiting to retry: not before its time.
                or_(Message.retry_at.is_(None), Message.retry_at <= now),
            )
            .order_by(Message.id)
            .limit(limit)
        )
    )


def forget_jobs(session: Session) -> int:
    """Every queued message needs a job again (the queue lost them all); returns how many."""
    result = session.execute(
        update(Message)
        .where(Message.state == MessageState.QUEUED, Message.enqueued_at.is_not(None))
        .values(enqueued_at=None)
    )
    session.commit()
    return rows_changed(result)


def mark_enqueued(session: Session, message_ids: Sequence[int], now: datetime) -> None:
    """Remember when the jobs for these messages were handed to the queue."""
    session.execute(update(Message).where(Message.id.in_(message_ids)).values(enqueued_at=now))
    session.commit()


def tick(
    session: Session,
    now: datetime,
    enqueue: Enqueue,
    *,
    batch_size: int = 5000,
    send_batch_size: int = 50,
    requeue_after: timedelta = timedelta(minutes=2),
    stuck_after: timedelta = timedelta(minutes=10),
    team_zone: str = "UTC",
    lease_seconds: float | None = None,
    jobs_lost: bool = False,
) -> TickResult:
    """One scheduler pass: create due messages, recover lost ones, enqueue their ids.

    ``lease_seconds`` (None: not this pass) hands back the claims of workers whose heartbeat
    stopped; ``jobs_lost`` (Redis came back empty) enqueues every queued message again now,
    rather than after ``requeue_after``.
    """
    result = TickResult()
    if jobs_lost:
        forget_jobs(session)
    result.created, result.completed = create_due_messages(session, now, batch_size)
    result.created += broadcasts.run_broadcasts(session, now, team_zone)
    result.recovered = recover_stuck(session, now, stuck_after)
    if lease_seconds is not None:
        result.recovered += recover_orphans(session, lease_seconds)
    while True:
        ids = messages_to_enqueue(session, now, requeue_after)
        if not ids:
            break
        enqueue([ids[at : at + send_batch_size] for at in range(0, len(ids), send_batch_size)])
        # Only after Redis took the jobs: if it is down, the next tick tries again.
        mark_enqueued(session, ids, now)
        result.enqueued += len(ids)
    return result
