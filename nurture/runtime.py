"""Injected time: the system clock in production, a controllable one in tests and demos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flask import Flask


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to; for unit tests in one process."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        self._now += delta
        return self._now


class FileClock:
    """A clock read from a file, so a test can move time for a worker in another process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def now(self) -> datetime:
        """Return the instant written in the file."""
        return datetime.fromisoformat(self.path.read_text().strip()).astimezone(UTC)

    def set(self, when: datetime) -> None:
        """Write ``when`` atomically so a concurrent reader never sees half a timestamp."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(when.astimezone(UTC).isoformat())
        tmp.replace(self.path)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` and return the new time."""
        when = self.now() + delta
        self.set(when)
        return when


def clock_from_setting(setting: str) -> Clock:
    """Build the clock named by the ``NURTURE_CLOCK`` setting."""
    if setting in ("", "system"):
        return SystemClock()
    return FileClock(setting)


def clock(app: Flask | None = None) -> Clock:
    """The clock of ``app`` or of the running app (``NURTURE_CLOCK``)."""
    from flask import current_app

    found: Clock = (app or current_app).extensions["nurture.clock"]
    return found


def now() -> datetime:
    """The running app's idea of now: what a view, command or task stamps its work with."""
    return clock().now()
