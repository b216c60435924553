"""Job openings and the reviewed list of candidates a job alert goes to."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class Opening(Base):
    """A role that opened, to be matched with past candidates."""

    __tablename__ = "openings"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    role_family: Mapped[str] = mapped_column(String(100), default="")
    skills: Mapped[list[str]] = mapped_column(default=list)
    location: Mapped[str] = mapped_column(String(200), default="")
    remote: Mapped[bool] = mapped_column(default=False)
    url: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    # The job-alert campaign that mails the reviewed matches.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class OpeningMatch(Base):
    """A candidate proposed for a job alert, with why they matched and the reviewer's verdict."""

    __tablename__ = "opening_matches"
    __table_args__ = (UniqueConstraint("opening_id", "candidate_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("openings.id", ondelete="CASCADE"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(default=0.0)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    # Removed by the reviewer: never mailed for this job.
    excluded: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
