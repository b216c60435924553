"""What candidates tell us back beyond a rating: the one free-text answer after it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class FeedbackAnswer(Base):
    """A candidate's answer to "what could we have done better?", one per mail they rated.

    Stage and rejection reason are kept as they were when the candidate answered: the admin
    groups answers by them, and a later re-application must not move an old answer.
    """

    __tablename__ = "feedback_answers"
    __table_args__ = (
        Index("ix_feedback_answers_created", "created_at"),
        Index("ix_feedback_answers_candidate", "candidate_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), unique=True
    )
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    stage: Mapped[str] = mapped_column(String(100), default="")
    rejection_reason: Mapped[str] = mapped_column(String(200), default="")
    # The rating (1-5) the answer followed, when there was one.
    rating: Mapped[int | None]
    answer: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
