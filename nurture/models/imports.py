"""CSV imports: the upload, its column mapping, progress and the report of bad rows."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.models.base import Base


class ImportStatus(enum.StrEnum):
    """uploaded → running → done | failed."""

    UPLOADED = "uploaded"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Import(Base):
    """One CSV upload; kept in the database so any worker can run it and progress survives."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    content: Mapped[str] = mapped_column(Text, default="")
    # CSV column -> candidate field ("" to ignore the column).
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Tags added to every imported candidate.
    tags: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default=ImportStatus.UPLOADED)
    total_rows: Mapped[int] = mapped_column(default=0)
    processed_rows: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    rejected_count: Mapped[int] = mapped_column(default=0)
    # [{"line": 3, "field": "email", "reason": "..."}]
    errors: Mapped[list[Any]] = mapped_column(default=list)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    # Touched after every batch; a running import whose heartbeat stops is re-enqueued.
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
