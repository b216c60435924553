"""The scheduler: turn due enrolments into message rows, and find messages that need a job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from nurture.models import (
    Campaign,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    Message,
    MessageState,
    Step,
)
from nurture.services import broadcasts

Enqueue = Callable[[Sequence[int]], None]


@dataclass
class TickResult:
    """What one scheduler pass did."""

    created: int = 0
    enqueued: int = 0
    completed: int = 0


def _insert(session: Session):  # noqa: ANN202 - a dialect's insert construct
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(Message)


def create_due_messages(session: Session, now: datetime, batch_size: int = 1000) -> tuple[int, int]:
    """Create one queued message per due enrolment, batch by batch; returns (created, completed).

    The unique key on (enrolment, step) makes this safe to run from several schedulers at once;
    on PostgreSQL ``SKIP LOCKED`` also keeps them from waiting on each other.
    """
    created = completed = 0
    while True:
        due = session.execute(
            select(
                Enrolment.id, Enrolment.candidate_id, Enrolment.campaign_id, Enrolment.next_position
            )
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
        campaign_ids = {row.campaign_id for row in due}
        steps = {
            (step.campaign_id, step.position): step.id
            for step in session.scalars(select(Step).where(Step.campaign_id.in_(campaign_ids)))
        }
        rows, finished = [], []
        for row in due:
            step_id = steps.get((row.campaign_id, row.next_position))
            if step_id is None:
                finished.append(row.id)  # a step was removed: nothing left to send
                continue
            rows.append(
                {
                    "candidate_id": row.candidate_id,
                    "campaign_id": row.campaign_id,
                    "step_id": step_id,
                    "enrolment_id": row.id,
                    "state": MessageState.QUEUED,
                    "attempts": 0,
                    "error": "",
                    "message_id": "",
                    "to_address": "",
                    "subject": "",
                    "queued_at": now,
                }
            )
        if rows:
            inserted = session.scalars(
                _insert(session).values(rows).on_conflict_do_nothing().returning(Message.id)
            ).all()
            created += len(inserted)
        session.execute(
            update(Enrolment)
            .where(Enrolment.id.in_([row.id for row in due]))
            .values(next_send_at=None)
        )
        if finished:
            session.execute(
                update(Enrolment)
                .where(Enrolment.id.in_(finished))
                .values(status=EnrolmentStatus.COMPLETED, ended_at=now)
            )
            completed += len(finished)
        session.commit()
    return created, completed


def recover_stuck(session: Session, now: datetime, stuck_after: timedelta) -> int:
    """Messages left in ``sending`` by a worker that died go back to the queue."""
    result = session.execute(
        update(Message)
        .where(Message.state == MessageState.SENDING, Message.claimed_at < now - stuck_after)
        .values(state=MessageState.QUEUED, enqueued_at=None)
    )
    session.commit()
    return result.rowcount or 0


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


def mark_enqueued(session: Session, message_ids: Sequence[int], now: datetime) -> None:
    """Remember when the jobs for these messages were handed to the queue."""
    session.execute(update(Message).where(Message.id.in_(message_ids)).values(enqueued_at=now))
    session.commit()


def tick(
    session: Session,
    now: datetime,
    enqueue: Enqueue,
    *,
    batch_size: int = 1000,
    send_batch_size: int = 50,
    requeue_after: timedelta = timedelta(minutes=2),
    stuck_after: timedelta = timedelta(minutes=10),
    team_zone: str = "UTC",
) -> TickResult:
    """One scheduler pass: create due messages, recover lost ones, enqueue their ids."""
    result = TickResult()
    result.created, result.completed = create_due_messages(session, now, batch_size)
    result.created += broadcasts.run_broadcasts(session, now, team_zone)
    recover_stuck(session, now, stuck_after)
    while True:
        ids = messages_to_enqueue(session, now, requeue_after)
        if not ids:
            break
        for start in range(0, len(ids), send_batch_size):
            chunk = ids[start : start + send_batch_size]
            enqueue(chunk)
            # Only after Redis took the job: if it is down, the next tick tries again.
            mark_enqueued(session, chunk, now)
            result.enqueued += len(chunk)
    return result
