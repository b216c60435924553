"""Settings the team changes in the admin (deployment settings stay in NURTURE_* variables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class TeamSetting(Base):
    """One named setting, e.g. the rejection-promptness target."""

    __tablename__ = "team_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
