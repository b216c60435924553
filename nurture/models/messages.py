"""The per-recipient ledger: one row a mail, and the events that come back."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Double, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class MessageState(enum.StrEnum):
    """queued → sending → sent | failed | skipped."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class EventKind(enum.StrEnum):
    """What a candidate (or their mail system) did with a message."""

    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    REPLY = "reply"
    RATING = "rating"


# ``messages.error`` of a mail held back because its step needs the recruiter's note: the mail
# stays queued, and goes as soon as someone writes the candidate's strengths.
HELD_FOR_STRENGTHS = "held: this step needs the recruiter's note (strengths), which is empty"
# ... and of a mail held back for the winner of its step's A/B test: it goes once it is decided.
HELD_FOR_AB_WINNER = "held: waiting for the winner of this step's A/B subject test"


class Message(Base):
    """One email to one candidate; at most one per (enrolment, step)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("enrolment_id", "step_id"),
        Index("ix_messages_state", "state", "queued_at"),
        Index("ix_messages_candidate", "candidate_id"),
        Index("ix_messages_step", "step_id", "state"),
        Index("ix_messages_message_id", "message_id"),
        Index("ix_messages_campaign_candidate", "campaign_id", "candidate_id"),
        Index("ix_messages_campaign_id", "campaign_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    enrolment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolments.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(20), default=MessageState.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(255), default="")
    to_address: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    queued_at: Mapped[datetime]
    enqueued_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    # The worker (its heartbeat's name) whose claim the row is in while "sending": the scheduler
    # returns the row only once that worker's heartbeat has stopped.
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None]
    # Not before: a retry after a temporary failure, or a mail deferred by a send window or cap.
    retry_at: Mapped[datetime | None]
    # The A/B variant (position: 0 is A) this mail's subject came from, when its step tests some.
    ab_variant: Mapped[int | None]


class WorkerHeartbeat(Base):
    """A sending worker's lease: rows it claimed stay its own while ``beat_at`` is recent."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime]
    # Seconds since the epoch by the database's clock, so that workers and schedulers on
    # different machines (or with an injected clock) agree on how old a beat is.
    beat_at: Mapped[float] = mapped_column(Double)


class Event(Base):
    """An open, click, unsubscribe, bounce or complaint, tied to the message it came from."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_message", "message_id", "kind"),
        Index("ix_events_candidate", "candidate_id", "created_at"),
        Index("ix_events_kind_time", "kind", "created_at"),
        # Stats, segments and scores read human events only.
        Index(
            "ix_events_human",
            "kind",
            "created_at",
            "message_id",
            "candidate_id",
            postgresql_where=text("NOT machine"),
            sqlite_where=text("machine = 0"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text, default="")
    # Privacy proxies and link scanners: recorded, but left out of stats.
    machine: Mapped[bool] = mapped_column(default=False)
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    # Kind-specific detail: the rating (1-5), "hard"/"soft" for bounces, the reply's subject.
    value: Mapped[str] = mapped_column(String(400), default="")
    # What the candidate wrote with it: why they unsubscribed, a comment on their rating.
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
