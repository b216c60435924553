"""When a mail may go out: send windows in the candidate's zone, the frequency cap, pauses.

Plain functions of times and settings; the database is read by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.core.errors import ValidationError

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = get_args(Day)


@dataclass(frozen=True)
class Cap:
    """At most ``mails`` sent mails per ``days`` days per candidate, across all campaigns."""

    mails: int
    days: int

    @property
    def period(self) -> timedelta:
        """The length of the sliding window the cap counts over."""
        return timedelta(days=self.days)


@dataclass(frozen=True)
class Timing:
    """The team-wide timing settings a sender applies at send time."""

    team_zone: str = "UTC"
    cap: Cap | None = Cap(2, 7)

    @classmethod
    def from_config(cls, config: Any) -> Timing:
        """Read ``TEAM_TIMEZONE`` and ``FREQUENCY_CAP`` from the app's configuration."""
        return cls(
            team_zone=config.get("TEAM_TIMEZONE") or "UTC",
            cap=parse_cap(config.get("FREQUENCY_CAP"), "FREQUENCY_CAP"),
        )


def parse_cap(value: Any, field: str = "frequency_cap") -> Cap | None:
    """A cap from ``{"mails": 2, "days": 7}``; None (or {}) means no cap."""
    if not value:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{field} is not valid", {field: 'give {"mails": 2, "days": 7}'})
    mails, days = value.get("mails"), value.get("days")
    ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (mails, days))
    if not ok:
        raise ValidationError(
            f"{field} is not valid", {field: "mails and days must be whole numbers above 0"}
        )
    assert isinstance(mails, int) and isinstance(days, int)  # checked above
    return Cap(mails, days)


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The candidate's zone, else the team's (an unknown name falls back too, never raises)."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """``day`` at wall-clock ``at`` in ``tz``, as UTC.

    A wall time skipped by a spring-forward change moves to the first minute that exists; a
    time that happens twice (autumn) is the first of the two.
    """
    wall = datetime.combine(day, at)
    candidate = wall.replace(tzinfo=tz, fold=0)
    for _ in range(24 * 60):
        utc = candidate.astimezone(UTC)
        if utc.astimezone(tz).replace(tzinfo=None) == candidate.replace(tzinfo=None):
            return utc
        candidate += timedelta(minutes=1)  # wall-clock arithmetic: the next minute on the dial
    raise ValueError(f"no valid local time after {wall} in {tz}")  # pragma: no cover


def _hhmm(value: str) -> tuple[time, int]:
    """A time of day and a day offset: "24:00" is midnight of the next day."""
    if value == "24:00":
        return time(0, 0), 1
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes)), 0


def _openings(day: date, window: dict[str, Any], tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The window that opens on ``day``: its start and end in UTC."""
    start, _ = _hhmm(window.get("start", "00:00"))
    end, extra = _hhmm(window.get("end", "24:00"))
    if extra == 0 and end <= start:
        extra = 1  # across midnight: it ends on the next day
    return local_instant(day, start, tz), local_instant(day + timedelta(days=extra), end, tz)


def next_allowed(now_utc: datetime, window: dict[str, Any] | None, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``now_utc`` inside the send window, in UTC."""
    if not window:
        return now_utc
    days = set(window.get("days") or DAYS)
    today = now_utc.astimezone(tz).date()
    # Start a day early: yesterday's overnight window may still be open.
    for offset in range(-1, 9):
        day = today + timedelta(days=offset)
        if DAYS[day.weekday()] not in days:
            continue
        start, end = _openings(day, window, tz)
        if now_utc < start:
            return start
        if now_utc < end:
            return now_utc
    raise ValueError("the send window has no day in it")  # SendWindow forbids that


def cap_release(sent: Iterable[datetime], now: datetime, cap: Cap | None) -> datetime:
    """The first instant at or after ``now`` when one more mail fits under the cap.

    ``sent`` are the candidate's sent times; only those in the last ``cap.days`` count. When
    the cap is reached, a mail may go once enough of the oldest ones have left the window.
    """
    if cap is None:
        return now
    counted = sorted(t for t in sent if now - cap.period < t <= now)
    if len(counted) < cap.mails:
        return now
    # Sending needs the count to drop to mails - 1: the (len - mails + 1)-th oldest must leave.
    return counted[len(counted) - cap.mails] + cap.period


def earliest_send(
    now: datetime,
    *,
    window: dict[str, Any] | None,
    tz: ZoneInfo,
    sent: Iterable[datetime] = (),
    cap: Cap | None = None,
    paused_until: datetime | None = None,
) -> datetime:
    """The first instant at or after ``now`` that the pause, the cap and the window all allow."""
    sent = list(sent)
    when = now
    for _ in range(50):  # each rule only moves time forward; a few rounds settle it
        moved = max(when, paused_until or when)
        moved = cap_release(sent, moved, cap)
        moved = next_allowed(moved, window, tz)
        if moved == when:
            return when
        when = moved
    return when


def parse_schedule(value: Any, local_time: bool, field: str = "scheduled_at") -> datetime:
    """When a broadcast goes out, from ISO-8601.

    With ``local_time`` the date and wall-clock time are read in each candidate's zone, so the
    time is kept as written (any offset is dropped) and stored as if it were UTC; otherwise it
    is an instant and must carry its offset (``Z`` or ``+02:00``).
    """
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("z", "Z"))
    except ValueError:
        raise ValidationError(
            f"{field} is not a time", {field: "an ISO-8601 time such as 2026-03-10T09:00:00Z"}
        ) from None
    if local_time:
        return parsed.replace(tzinfo=UTC)
    if parsed.tzinfo is None:
        raise ValidationError(
            f"{field} has no zone",
            {field: "give an offset (Z or +02:00), or set local_time for each candidate's zone"},
        )
    return parsed.astimezone(UTC)
