"""Candidates' replies, handed to a person: the recruiter's inbox and its forwarding ledger."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class ReplyState(enum.StrEnum):
    """Open until someone on the team says it is handled."""

    OPEN = "open"
    HANDLED = "handled"


class ForwardState(enum.StrEnum):
    """pending → sent | failed (after the last retry); none when there is nobody to send to."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    NONE = "none"


class Reply(Base):
    """A person's answer to one of our mails (auto-replies never become one)."""

    __tablename__ = "replies"
    __table_args__ = (
        Index("ix_replies_state", "state", "received_at"),
        Index("ix_replies_candidate", "candidate_id", "received_at"),
        Index("ix_replies_forward", "forward_state", "forward_next_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    # Our mail it answers, and the reply event recorded for it.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    # The reply's own Message-ID, for threading the forward and the recruiter's answer.
    mail_message_id: Mapped[str] = mapped_column(String(255), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    # The whole plain text, and only what they newly wrote (quotes and signature cut off).
    body: Mapped[str] = mapped_column(Text, default="")
    latest: Mapped[str] = mapped_column(Text, default="")
    # The mail as received, attached to the forward; dropped once forwarded.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), default=ReplyState.OPEN)
    handled_at: Mapped[datetime | None]
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    forward_to: Mapped[str] = mapped_column(String(320), default="")
    forward_state: Mapped[str] = mapped_column(String(20), default=ForwardState.PENDING)
    forward_attempts: Mapped[int] = mapped_column(default=0)
    forward_next_at: Mapped[datetime | None]
    forwarded_at: Mapped[datetime | None]
    forward_error: Mapped[str] = mapped_column(Text, default="")
