"""Candidates, their tags, and the suppression list that outlives them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.models.base import Base


class CandidateStatus(enum.StrEnum):
    """Where a candidate stands; only ``active`` candidates are ever mailed."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    HIRED = "hired"
    ERASED = "erased"
    # No engagement for the sunset period: not mailed until they re-engage or apply again.
    SUNSET = "sunset"


class Topic(enum.StrEnum):
    """What a mail is about, as the candidate's preference centre lets them choose it."""

    CHECKINS = "checkins"
    NEWSLETTER = "newsletter"
    JOB_ALERTS = "job_alerts"

    @property
    def label(self) -> str:
        """The recruiter's word for the topic (the admin)."""
        return _TOPIC_LABELS[self]

    @property
    def wording(self) -> str:
        """What the candidate reads on their preference page."""
        return _TOPIC_WORDING[self]


_TOPIC_LABELS = {
    Topic.CHECKINS: "Check-ins",
    Topic.NEWSLETTER: "Newsletter",
    Topic.JOB_ALERTS: "Job alerts",
}
_TOPIC_WORDING = {
    Topic.CHECKINS: "Check-ins from your recruiter",
    Topic.NEWSLETTER: "Talent-network newsletter",
    Topic.JOB_ALERTS: "Job alerts for roles that fit you",
}


candidate_tags = Table(
    "candidate_tags",
    Base.metadata,
    Column("candidate_id", ForeignKey("candidates.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tag(Base):
    """A label or talent pool, e.g. ``backend`` or ``silver-medalist``."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Candidate(Base):
    """A person the team wants to stay in touch with."""

    __tablename__ = "candidates"
    __table_args__ = (
        Index("ix_candidates_status", "status"),
        Index("ix_candidates_engagement", "engagement_points"),
        Index("ix_candidates_last_opened", "last_opened_at"),
        Index("ix_candidates_role", "role"),
        Index("ix_candidates_stage", "stage"),
        Index("ix_candidates_last_clicked", "last_clicked_at"),
        Index("ix_candidates_last_replied", "last_replied_at"),
        Index("ix_candidates_created", "created_at"),
        Index("ix_candidates_skills", "skills", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    # A BCP 47 code ("de", "pt-BR") or "" for the team's default: which translation they get.
    language: Mapped[str] = mapped_column(String(16), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(200), default="")
    stage: Mapped[str] = mapped_column(String(100), default="")
    rejection_reason: Mapped[str] = mapped_column(String(200), default="")
    strengths: Mapped[str] = mapped_column(Text, default="")
    skills: Mapped[list[str]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(100), default="")
    recruiter_name: Mapped[str] = mapped_column(String(200), default="")
    recruiter_email: Mapped[str] = mapped_column(String(320), default="")
    consent_basis: Mapped[str] = mapped_column(String(100), default="")
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    consent_at: Mapped[datetime | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default=CandidateStatus.ACTIVE)
    # Each human open, click and reply's weight grown to a fixed epoch; the score at any moment
    # is derived from it (nurture.core.audience.engagement.score), so nothing stored has to decay.
    engagement_points: Mapped[float] = mapped_column(default=0.0)
    # Engagement summarised per candidate (human opens/clicks only), so segments need no scan.
    last_opened_at: Mapped[datetime | None]
    last_clicked_at: Mapped[datetime | None]
    last_replied_at: Mapped[datetime | None]
    # Preference centre: topics they want ({"checkins": true, "newsletter": false, ...}).
    topics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    paused_until: Mapped[datetime | None]
    tracking_opt_out: Mapped[bool] = mapped_column(default=False)
    soft_bounces: Mapped[int] = mapped_column(default=0)
    # Who recommended them (source "referral"); the referral itself is in ``referrals``.
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"), index=True)
    # Talent-pool health: when and why mailing stopped (status "sunset"), kept after they come
    # back so the admin can tell a returning candidate.
    sunset_at: Mapped[datetime | None]
    sunset_reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    tags: Mapped[list[Tag]] = relationship(secondary=candidate_tags, lazy="selectin")

    @property
    def full_name(self) -> str:
        """First and last name, whichever are known."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def tag_names(self) -> list[str]:
        """Tag names in alphabetical order."""
        return sorted(tag.name for tag in self.tags)


class Suppression(Base):
    """An address that must never be mailed again, kept as a hash so it survives erasure."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The hash of the mailbox the address folds to ("ana+jobs@x" -> "ana@x"); consulted only for
    # the domains NURTURE_SUPPRESSION_FOLD_DOMAINS names. Empty on rows from before it existed.
    mailbox_hash: Mapped[str] = mapped_column(String(64), default="", index=True)
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
