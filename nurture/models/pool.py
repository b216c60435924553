"""Talent-pool health: a daily count of who is active, going cold, or sunset."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class PoolSnapshot(Base):
    """The pool on one day (UTC), written by the scheduler's periodic pass (the day's last
    pass wins), so the dashboard can show the shares over time without a scan of the past."""

    __tablename__ = "pool_snapshots"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # Mailable and engaged within the cold threshold.
    active: Mapped[int] = mapped_column(default=0)
    # Mailable, but no human open within the cold threshold.
    cold: Mapped[int] = mapped_column(default=0)
    # No engagement for the sunset period: no longer mailed until they come back.
    sunset: Mapped[int] = mapped_column(default=0)
    taken_at: Mapped[datetime]
