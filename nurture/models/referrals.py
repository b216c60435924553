"""Referrals from the talent network: who recommended whom, for which opening, what came of it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class ReferralState(enum.StrEnum):
    """What became of a recommendation."""

    # The referred person was asked whether we may keep their details; no answer yet.
    AWAITING_CONSENT = "awaiting_consent"
    # In the talent network with their consent.
    IN_NETWORK = "in_network"
    # Already known to us: nothing about them changed (the referrer is not told).
    KNOWN = "known"
    # Said no, or never answered: their details are gone.
    DECLINED = "declined"
    # Suppressed (unsubscribed, erased before): not contacted, nothing kept about them.
    NOT_CONTACTABLE = "not_contactable"
    HIRED = "hired"


class Referral(Base):
    """A candidate recommending someone, through their signed referral link."""

    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_referrer", "referrer_id", "created_at"),
        Index("ix_referrals_candidate", "candidate_id"),
        Index("ix_referrals_campaign", "campaign_id"),
        Index("ix_referrals_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    # The person recommended, once they are a candidate (None when nothing may be kept).
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL")
    )
    opening_id: Mapped[int | None] = mapped_column(ForeignKey("openings.id", ondelete="SET NULL"))
    # Kept as shown to the referrer, so the record reads the same after the opening is gone.
    opening_title: Mapped[str] = mapped_column(String(200), default="")
    # The mail whose link was followed, and its campaign: referrals per campaign.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    # How the referrer knows them ("worked together", ...).
    relation: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    # "given": the referrer says the person agreed; "requested": we asked them by mail.
    consent: Mapped[str] = mapped_column(String(20), default="requested")
    state: Mapped[str] = mapped_column(String(20), default=ReferralState.AWAITING_CONSENT)
    created_at: Mapped[datetime]
    consented_at: Mapped[datetime | None]
    hired_at: Mapped[datetime | None]
    thanked_at: Mapped[datetime | None]
    # The system mails about it: the consent request, and the referrer's thank-you on a hire.
    consent_enrolment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolments.id", ondelete="SET NULL")
    )
    thanks_enrolment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolments.id", ondelete="SET NULL")
    )
