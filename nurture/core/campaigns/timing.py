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


# Kinds of mail a step sends: a recruiter's personal note (the rejection follow-up, a reply)
# or regular mail (check-ins, newsletters, job alerts).
CATEGORIES = ("personal", "regular")


@dataclass(frozen=True)
class Timing:
    """The team-wide timing settings a sender applies at send time."""

    team_zone: str = "UTC"
    cap: Cap | None = Cap(2, 7)
    # Kinds of mail the frequency cap never holds (they still count towards it).
    cap_exempt: tuple[str, ...] = ("personal",)

    @classmethod
    def from_config(cls, config: Any) -> Timing:
        """Read ``TEAM_TIMEZONE``, ``FREQUENCY_CAP`` and ``FREQUENCY_CAP_EXEMPT``."""
        exempt = config.get("FREQUENCY_CAP_EXEMPT", ("personal",))
        return cls(
            team_zone=config.get("TEAM_TIMEZONE") or "UTC",
            cap=parse_cap(config.get("FREQUENCY_CAP"), "FREQUENCY_CAP"),
            cap_exempt=tuple(exempt or ()),
        )

    def cap_for(self, category: str) -> Cap | None:
        """The cap a mail of ``category`` waits for: none for personal mail (by default)."""
        return None if category in self.cap_exempt else self.cap


@dataclass(frozen=True)
class Hold:
    """Why a mail waits, and until when: ``reason`` is "paused", "frequency cap" or
    "send window"."""

    until: datetime
    reason: str


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
    return _earliest(now, window, tz, list(sent), cap, paused_until)[0]


def _earliest(
    now: datetime,
    window: dict[str, Any] | None,
    tz: ZoneInfo,
    sent: list[datetime],
    cap: Cap | None,
    paused_until: datetime | None,
) -> tuple[datetime, str]:
    """``earliest_send`` and the rule that moved it last ("" when nothing holds the mail)."""
    when, reason = now, ""
    for _ in range(50):  # each rule only moves time forward; a few rounds settle it
        moved = max(when, paused_until or when)
        if moved > when:
            reason = "paused"
        capped = cap_release(sent, moved, cap)
        if capped > moved:
            reason = "frequency cap"
        moved = next_allowed(capped, window, tz)
        if moved > capped:
            reason = "send window"
        if moved == when:
            return when, reason
        when = moved
    return when, reason


def hold_for(
    candidate: Any, campaign: Any, step: Any, timing: Timing, now: datetime, sent: list[datetime]
) -> Hold | None:
    """Why a mail of ``step`` to ``candidate`` waits now, and until when; None when it may go.

    The candidate's pause, the frequency cap (which personal mail skips, see ``Timing``) and
    the campaign's send window in the candidate's zone. ``sent`` holds when the candidate was
    last mailed, within the cap's period at least.
    """
    when, reason = _earliest(
        now,
        campaign.send_window,
        zone(candidate.timezone, timing.team_zone),
        sent,
        timing.cap_for(getattr(step, "category", "") or "regular"),
        candidate.paused_until,
    )
    return Hold(when, reason) if when > now else None


def describe_hold(
    reason: str,
    *,
    window: dict[str, Any] | None = None,
    tz_name: str = "",
    cap: Cap | None = None,
) -> str:
    """Why a mail waits, as a recruiter reads it (the page adds "until <time>"): "held by the
    frequency cap (2 mails per 7 days)", "waiting for the send window 09:00–17:00 Europe/Berlin"."""
    if reason == "frequency cap":
        rule = f" ({cap.mails} mails per {cap.days} days)" if cap else ""
        return f"held by the frequency cap{rule}"
    if reason == "send window":
        hours = f" {window.get('start', '00:00')}–{window.get('end', '24:00')}" if window else ""
        return f"waiting for the send window{hours}{' ' + tz_name if tz_name else ''}"
    if reason == "paused":
        return "held: the candidate paused their mail"
    if reason.startswith("attempt"):
        return f"retrying after a temporary failure ({reason})"
    return "waiting for the relay's rate limit" if not reason else f"waiting ({reason})"


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
