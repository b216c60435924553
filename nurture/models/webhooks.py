"""Outbound webhooks: the endpoints the team registered and the ledger of every delivery."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class DeliveryState(enum.StrEnum):
    """pending → sending → delivered | failed; a failed attempt goes back to pending."""

    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEndpoint(Base):
    """A URL that receives signed POSTs for the events it subscribes to."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(200), default="")
    # Event types it receives; empty means every one.
    events: Mapped[list[str]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event to one endpoint: the exact signed body, its attempts and the last answer."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_created", "created_at"),
        Index("ix_webhook_deliveries_candidate", "candidate_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: the endpoint configured by NURTURE_ATS_WEBHOOK_URL.
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # The same for every endpoint an event goes to: receivers de-duplicate on it.
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL")
    )
    state: Mapped[str] = mapped_column(String(20), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_response: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
