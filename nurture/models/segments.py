"""Segments: named rules over candidates and their engagement, compiled to SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class Segment(Base):
    """A saved rule tree (``{"all": [...]}``) whose members are computed, never stored."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Stage(Base):
    """A hiring stage in the team's own words, in pipeline order: the one spelling candidates
    carry (imports and the ATS writing "Onsite" or "on-site" get "onsite")."""

    __tablename__ = "stages"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
