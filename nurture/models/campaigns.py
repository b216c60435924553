"""Campaigns, their ordered steps, and the enrolment of candidates into them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nurture.models.base import Base
from nurture.models.candidates import Topic

if TYPE_CHECKING:
    from nurture.models.candidates import Candidate


class CampaignKind(enum.StrEnum):
    """What a campaign sends."""

    DRIP = "drip"
    BROADCAST = "broadcast"
    JOB_ALERT = "job_alert"

    @property
    def default_topic(self) -> Topic:
        """The preference topic a campaign of this kind belongs to unless it says otherwise."""
        return {
            CampaignKind.BROADCAST: Topic.NEWSLETTER,
            CampaignKind.JOB_ALERT: Topic.JOB_ALERTS,
        }.get(self, Topic.CHECKINS)


class CampaignStatus(enum.StrEnum):
    """draft → active ⇄ paused → archived."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class EntryType(enum.StrEnum):
    """How candidates enter a campaign."""

    ATS_EVENT = "ats_event"
    TAG = "tag"
    SEGMENT = "segment"
    MANUAL = "manual"


class AtsEventType(enum.StrEnum):
    """What the ATS tells: a rejection enrols, a hire or a re-application ends drips."""

    REJECTED = "candidate.rejected"
    HIRED = "candidate.hired"
    REAPPLIED = "candidate.reapplied"


class ExitRule(enum.StrEnum):
    """What ends a candidate's drip early, when the campaign says so (``Campaign.exit_on``).

    Unsubscribes, bounces, complaints and erasure end every drip whatever the rules say.
    """

    HIRED = "hired"
    REAPPLIED = "reapplied"
    REPLIED = "replied"
    LEFT_SEGMENT = "left_segment"


class Reentry(enum.StrEnum):
    """Whether someone enrolled before may enter the campaign again."""

    NEVER = "never"
    # Once the previous enrolment ended.
    AFTER_EXIT = "after_exit"
    # Every time: a new entry restarts a running drip.
    ALWAYS = "always"


class StepCondition(enum.StrEnum):
    """When a step's mail goes out, judged on the previous step's mail ("" means always)."""

    PREVIOUS_OPENED = "previous_opened"
    PREVIOUS_NOT_OPENED = "previous_not_opened"
    PREVIOUS_CLICKED = "previous_clicked"


class EnrolmentStatus(enum.StrEnum):
    """An enrolment is active until it completes its steps or exits early."""

    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


# The exit reason of the rows that keep a segment's members at activation out of a drip whose
# editor chose "only those who join from now": not enrolments anyone went through.
BEFORE_ACTIVATION = "in segment before activation"

# What ends a drip unless the campaign says otherwise (besides what always ends every drip).
DEFAULT_EXIT_ON = (ExitRule.HIRED, ExitRule.REAPPLIED, ExitRule.REPLIED)


class Campaign(Base):
    """A drip, broadcast or job alert, with its sender and entry rule."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default=CampaignKind.DRIP)
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT)
    entry_type: Mapped[str] = mapped_column(String(20), default=EntryType.MANUAL)
    entry_value: Mapped[str] = mapped_column(String(200), default="")
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    sender_email: Mapped[str] = mapped_column(String(320), default="")
    # Use the candidate's recruiter as From/Reply-To when they have one.
    sender_is_recruiter: Mapped[bool] = mapped_column(default=True)
    send_window: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # ExitRule values: why an enrolment ends early besides what ends every drip.
    exit_on: Mapped[list[str]] = mapped_column(default=lambda: list(DEFAULT_EXIT_ON))
    # The preference-centre Topic this campaign belongs to.
    topic: Mapped[str] = mapped_column(String(40), default=Topic.CHECKINS)
    # ATS-event entries may be narrowed: {"rejection_reasons": [...], "stages": [...]}.
    entry_filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A Reentry policy.
    reentry: Mapped[str] = mapped_column(String(20), default=Reentry.NEVER)
    # Broadcasts: when to send, and whether at that local hour in each candidate's zone.
    scheduled_at: Mapped[datetime | None]
    local_time: Mapped[bool] = mapped_column(default=False)
    # A broadcast: when its audience was closed (everyone due has a message). None until then.
    sent_at: Mapped[datetime | None]
    description: Mapped[str] = mapped_column(Text, default="")
    # Campaigns sharing a group are exclusive: a candidate is in at most one of them at a time
    # (e.g. "rejection-follow-up": one follow-up per rejection). "" = no group.
    exclusive_group: Mapped[str] = mapped_column(String(60), default="")
    # Also enters: candidates in this segment, whatever the entry above (None = nobody more).
    entry_segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    steps: Mapped[list[Step]] = relationship(
        back_populates="campaign", order_by="Step.position", cascade="all, delete-orphan"
    )


class Step(Base):
    """One mail of a campaign: sent ``delay_seconds`` after the previous one (or the entry)."""

    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int]
    delay_seconds: Mapped[int] = mapped_column(default=0)
    # ISO-8601 as written by the user, kept so the API answers with what it was given.
    delay: Mapped[str] = mapped_column(String(40), default="PT0S")
    template: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # A StepCondition, or "" for always.
    condition: Mapped[str] = mapped_column(String(40), default="")
    # "personal" (a recruiter's follow-up: the frequency cap never holds it) or "regular".
    category: Mapped[str] = mapped_column(String(20), default="regular")
    # A personal follow-up: held (not sent) while the candidate's ``strengths`` is empty.
    require_strengths: Mapped[bool] = mapped_column(default=False)
    # A/B subjects (with ``variants``): the share of the step's mails that try the variants
    # (0: no test); the rest wait for the winner by unique human ``ab_metric`` ("opens" or
    # "clicks"), decided ``ab_decide_after_seconds`` after the first test mail or once each
    # variant went to ``ab_min_sample`` candidates, whichever comes first.
    ab_sample_percent: Mapped[int] = mapped_column(default=0)
    ab_metric: Mapped[str] = mapped_column(String(10), default="opens")
    ab_decide_after_seconds: Mapped[int] = mapped_column(default=0)
    ab_min_sample: Mapped[int] = mapped_column(default=0)
    ab_started_at: Mapped[datetime | None]
    ab_decided_at: Mapped[datetime | None]
    # The variant (position) everyone else gets, once decided; and the test's figures then.
    ab_winner: Mapped[int | None]
    ab_result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # By language code: {"de": {"subject": "...", "html": "...", "text": "..."}}, each part
    # optional; the step's own parts are the team's default language.
    translations: Mapped[dict[str, Any]] = mapped_column(default=dict)

    campaign: Mapped[Campaign] = relationship(back_populates="steps")
    variants: Mapped[list[StepVariant]] = relationship(
        back_populates="step", order_by="StepVariant.position", cascade="all, delete-orphan"
    )


class StepVariant(Base):
    """One subject line (and preview text) a step's A/B test tries; A is position 0."""

    __tablename__ = "step_variants"
    __table_args__ = (UniqueConstraint("step_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id", ondelete="CASCADE"))
    position: Mapped[int]
    subject: Mapped[str] = mapped_column(Text, default="")
    preheader: Mapped[str] = mapped_column(Text, default="")

    step: Mapped[Step] = relationship(back_populates="variants")

    @property
    def label(self) -> str:
        """A, B, C or D."""
        return "ABCD"[self.position]


class Enrolment(Base):
    """A candidate's way through one campaign."""

    __tablename__ = "enrolments"
    __table_args__ = (
        Index("ix_enrolments_due", "status", "next_send_at"),
        Index("ix_enrolments_candidate", "candidate_id", "status"),
        # At most one active enrolment per candidate and campaign, whatever races.
        Index(
            "uq_enrolments_active",
            "campaign_id",
            "candidate_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # Position of the next step to send.
    next_position: Mapped[int] = mapped_column(default=0)
    # NULL while that step's message is in flight, so the scheduler doesn't pick it twice.
    next_send_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default=EnrolmentStatus.ACTIVE)
    exit_reason: Mapped[str] = mapped_column(String(40), default="")
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    candidate: Mapped[Candidate] = relationship()
    campaign: Mapped[Campaign] = relationship()
