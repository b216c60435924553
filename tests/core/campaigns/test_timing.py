"""Send windows in the candidate's zone, across daylight-saving changes; the frequency cap."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from nurture.core.campaigns.schemas import SendWindow
from nurture.core.campaigns.timing import (
    Cap,
    Timing,
    cap_release,
    earliest_send,
    local_instant,
    next_allowed,
    parse_cap,
    parse_schedule,
    zone,
)
from nurture.core.errors import ValidationError
from nurture.core.inputs import parse

WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
LONDON, NEW_YORK = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
KOLKATA, LORD_HOWE = ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Lord_Howe")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "expected", "why"),
    [
        (utc(2026, 1, 7, 12, 0), utc(2026, 1, 7, 12, 0), "inside: a Wednesday at noon"),
        (utc(2026, 1, 7, 9, 0), utc(2026, 1, 7, 9, 0), "the first minute is inside"),
        (utc(2026, 1, 7, 6, 30), utc(2026, 1, 7, 9, 0), "before: later the same day"),
        (utc(2026, 1, 7, 17, 0), utc(2026, 1, 8, 9, 0), "the end is outside: next day"),
        (utc(2026, 1, 9, 18, 0), utc(2026, 1, 12, 9, 0), "Friday evening: Monday morning"),
        (utc(2026, 1, 10, 12, 0), utc(2026, 1, 12, 9, 0), "Saturday: Monday morning"),
        (utc(2026, 1, 11, 23, 59), utc(2026, 1, 12, 9, 0), "late Sunday: Monday morning"),
    ],
)
def test_weekday_window_in_utc(now: datetime, expected: datetime, why: str) -> None:
    assert next_allowed(now, WEEKDAYS, ZoneInfo("UTC")) == expected, why


def test_no_window_means_now() -> None:
    now = utc(2026, 1, 10, 3, 0)
    assert next_allowed(now, {}, LONDON) == now
    assert next_allowed(now, None, LONDON) == now


def test_the_window_is_the_candidates_own_wall_clock() -> None:
    # 15:00 UTC on a Monday in January: 10:00 in New York (inside), 20:30 in Kolkata (after).
    now = utc(2026, 1, 5, 15, 0)
    assert next_allowed(now, WEEKDAYS, NEW_YORK) == now
    assert next_allowed(now, WEEKDAYS, KOLKATA) == local(KOLKATA, 2026, 1, 6, 9, 0)
    # Kolkata is UTC+05:30 all year: 09:00 there is 03:30 UTC.
    assert next_allowed(now, WEEKDAYS, KOLKATA) == utc(2026, 1, 6, 3, 30)


@pytest.mark.parametrize(
    ("tz", "before", "after", "utc_before", "utc_after"),
    [
        # London: GMT until 29 March 2026, BST from then; back to GMT on 25 October 2026.
        (LONDON, date(2026, 3, 27), date(2026, 3, 30), time(9, 0), time(8, 0)),
        (LONDON, date(2026, 10, 23), date(2026, 10, 26), time(8, 0), time(9, 0)),
        # New York: EST until 8 March 2026, EDT until 1 November 2026.
        (NEW_YORK, date(2026, 3, 6), date(2026, 3, 9), time(14, 0), time(13, 0)),
        (NEW_YORK, date(2026, 10, 30), date(2026, 11, 2), time(13, 0), time(14, 0)),
    ],
)
def test_nine_local_stays_nine_local_across_a_dst_change(
    tz: ZoneInfo, before: date, after: date, utc_before: time, utc_after: time
) -> None:
    """Friday evening before the change → the Monday after it, at 09:00 on the local clock."""
    friday_evening = datetime.combine(before, time(18, 0), tz).astimezone(UTC)
    monday = next_allowed(friday_evening, WEEKDAYS, tz)
    assert monday.astimezone(tz).replace(tzinfo=None) == datetime.combine(after, time(9, 0))
    assert monday.time() == utc_after
    # And the Friday itself opened at 09:00 local on the old offset.
    friday_morning = next_allowed(datetime.combine(before, time(0, 0), UTC), WEEKDAYS, tz)
    assert friday_morning.time() == utc_before


def test_the_window_closes_at_local_time_on_the_day_the_clocks_change() -> None:
    """Sunday 29 March 2026, London: a window every day 00:00–04:00 is only 3 hours long."""
    window = {"start": "00:00", "end": "04:00"}
    day_start = local(LONDON, 2026, 3, 29, 0, 0)
    assert day_start == utc(2026, 3, 29, 0, 0)
    # 02:30 UTC is 03:30 BST: still inside; 03:00 UTC is 04:00 BST: closed until tomorrow.
    assert next_allowed(utc(2026, 3, 29, 2, 30), window, LONDON) == utc(2026, 3, 29, 2, 30)
    assert next_allowed(utc(2026, 3, 29, 3, 0), window, LONDON) == utc(2026, 3, 29, 23, 0)


def test_a_start_in_the_spring_forward_gap_moves_to_the_next_valid_minute() -> None:
    # London skips 01:00–01:59 on 29 March 2026: a 01:30 start opens at 02:00 BST (01:00 UTC).
    window = {"start": "01:30", "end": "05:00"}
    opens = next_allowed(utc(2026, 3, 28, 23, 0), window, LONDON)
    assert opens == utc(2026, 3, 29, 1, 0)
    assert opens.astimezone(LONDON).strftime("%H:%M %Z") == "02:00 BST"
    # New York skips 02:00–02:59 on 8 March 2026.
    assert local_instant(date(2026, 3, 8), time(2, 15), NEW_YORK) == utc(2026, 3, 8, 7, 0)
    # Lord Howe Island moves by half an hour: 02:00–02:29 does not exist on 5 October 2025.
    opens = local_instant(date(2025, 10, 5), time(2, 10), LORD_HOWE)
    assert opens.astimezone(LORD_HOWE).strftime("%H:%M") == "02:30"


def test_a_time_that_happens_twice_is_the_first_one() -> None:
    # 01:30 happens twice in London on 25 October 2026: first in BST (00:30 UTC).
    assert local_instant(date(2026, 10, 25), time(1, 30), LONDON) == utc(2026, 10, 25, 0, 30)


def test_a_window_across_midnight() -> None:
    night = {"days": ["mon"], "start": "22:00", "end": "06:00"}
    tz = ZoneInfo("UTC")
    assert next_allowed(utc(2026, 1, 5, 12, 0), night, tz) == utc(2026, 1, 5, 22, 0)
    # Tuesday 03:00 is still Monday's window.
    assert next_allowed(utc(2026, 1, 6, 3, 0), night, tz) == utc(2026, 1, 6, 3, 0)
    assert next_allowed(utc(2026, 1, 6, 6, 0), night, tz) == utc(2026, 1, 12, 22, 0)


def test_unknown_zones_fall_back_to_the_team_zone() -> None:
    assert zone("Europe/Paris", "UTC").key == "Europe/Paris"
    assert zone("", "America/New_York").key == "America/New_York"
    assert zone("Not/AZone", "Europe/London").key == "Europe/London"
    assert zone("", "Bad/Team").key == "UTC"


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ("weekdays", "send_window"),
        ({"days": ["monday"]}, "send_window.days"),
        ({"days": []}, "send_window.days"),
        ({"start": "9am"}, "send_window.start"),
        ({"end": "25:00"}, "send_window.end"),
        ({"start": "09:00", "end": "09:00"}, "send_window.end"),
        ({"from": "09:00"}, "send_window.from"),
    ],
)
def test_bad_windows_name_the_field(window, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(SendWindow, window, prefix="send_window")
    assert field in caught.value.fields


def parse_window(window: dict) -> dict:
    return parse(SendWindow, window).stored()


def test_windows_are_stored_as_given_with_days_in_week_order() -> None:
    assert parse_window({"start": "09:00", "end": "17:00"}) == {"start": "09:00", "end": "17:00"}
    assert parse_window({"days": ["FRI", "mon"]}) == {"days": ["mon", "fri"]}
    assert parse_window({"end": "24:00"}) == {"end": "24:00"}
    assert parse_window({}) == {}


# --- the frequency cap ----------------------------------------------------------------------

NOW = utc(2026, 3, 10, 12, 0)
TWO_PER_WEEK = Cap(mails=2, days=7)


def test_under_the_cap_a_mail_goes_now() -> None:
    assert cap_release([], NOW, TWO_PER_WEEK) == NOW
    assert cap_release([NOW - timedelta(days=1)], NOW, TWO_PER_WEEK) == NOW
    # Mail older than the period does not count.
    old = [NOW - timedelta(days=8), NOW - timedelta(days=7)]
    assert cap_release(old, NOW, TWO_PER_WEEK) == NOW


def test_at_the_cap_a_mail_waits_until_the_oldest_counted_one_leaves_the_window() -> None:
    sent = [NOW - timedelta(days=5), NOW - timedelta(days=1)]
    assert cap_release(sent, NOW, TWO_PER_WEEK) == NOW + timedelta(days=2)
    # Over the cap (three counted, e.g. the cap was lowered): two must leave.
    sent = [NOW - timedelta(days=6), NOW - timedelta(days=3), NOW - timedelta(days=1)]
    assert cap_release(sent, NOW, TWO_PER_WEEK) == NOW + timedelta(days=4)
    assert cap_release(sent, NOW, None) == NOW


def test_cap_settings() -> None:
    assert parse_cap({"mails": 2, "days": 7}) == Cap(2, 7)
    assert parse_cap({}) is None and parse_cap(None) is None
    for bad in ({"mails": 0, "days": 7}, {"mails": 2}, {"mails": True, "days": 7}, "2/7"):
        with pytest.raises(ValidationError):
            parse_cap(bad)
    timing = Timing.from_config({"TEAM_TIMEZONE": "Europe/Berlin", "FREQUENCY_CAP": {}})
    assert timing == Timing(team_zone="Europe/Berlin", cap=None)


def test_pause_cap_and_window_combine() -> None:
    """Capped until Saturday noon, but the window is weekdays: Monday 09:00."""
    friday = utc(2026, 1, 9, 12, 0)
    sent = [friday - timedelta(days=6), friday - timedelta(days=2)]
    when = earliest_send(friday, window=WEEKDAYS, tz=ZoneInfo("UTC"), sent=sent, cap=TWO_PER_WEEK)
    assert when == utc(2026, 1, 12, 9, 0)
    # Paused until Wednesday 20:00: the window then opens on Thursday.
    paused = utc(2026, 1, 14, 20, 0)
    assert earliest_send(friday, window=WEEKDAYS, tz=ZoneInfo("UTC"), paused_until=paused) == utc(
        2026, 1, 15, 9, 0
    )
    # A pause in the past changes nothing.
    past = utc(2026, 1, 1)
    assert earliest_send(friday, window={}, tz=ZoneInfo("UTC"), paused_until=past) == friday


def test_scheduled_times() -> None:
    assert parse_schedule("2026-03-10T09:00:00+01:00", False) == utc(2026, 3, 10, 8, 0)
    # At local time the wall clock is kept as written.
    assert parse_schedule("2026-03-10T09:00", True) == utc(2026, 3, 10, 9, 0)
    with pytest.raises(ValidationError) as caught:
        parse_schedule("2026-03-10T09:00", False)
    assert "scheduled_at" in caught.value.fields
    with pytest.raises(ValidationError):
        parse_schedule("next tuesday", True)
