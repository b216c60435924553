"""What the ATS told us, kept: the rejection time is where rejection promptness is measured from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class AtsEvent(Base):
    """One ``candidate.rejected``, ``hired`` or ``reapplied`` event, as it was received."""

    __tablename__ = "ats_events"
    __table_args__ = (
        Index("ix_ats_events_type_time", "type", "received_at"),
        Index("ix_ats_events_candidate", "candidate_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime]
    # The recruiter who owned the candidate then: promptness is reported per recruiter.
    recruiter_email: Mapped[str] = mapped_column(String(320), default="")
    recruiter_name: Mapped[str] = mapped_column(String(200), default="")
    # The first campaign the event enrolled the candidate in (None: no campaign matched).
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    enrolled: Mapped[int] = mapped_column(default=0)
