"""The declarative base and the column types every model shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, registry

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult, Result

# The largest id an INTEGER primary key holds on every backend (32 bits on PostgreSQL): a larger
# number names no row, and is refused before it reaches the database as an overflow.
MAX_ID = 2**31 - 1

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Base of every nurture model."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING),
        type_annotation_map={
            datetime: UTCDateTime(),
            dict[str, Any]: JSONType,
            list[str]: JSONType,
            list[Any]: JSONType,
        },
    )


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE, DELETE or INSERT touched (0 where the driver cannot say)."""
    return max(cast("CursorResult[Any]", result).rowcount or 0, 0)
