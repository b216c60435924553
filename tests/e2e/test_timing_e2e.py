"""Timing end to end: scheduler → real Redis → real RQ worker (burst) → real SMTP, on a moved clock.

A mail outside the candidate's send window, over the frequency cap or during a pause is deferred,
never dropped, and goes out when it may, in the candidate's own zone across daylight saving.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Message
from nurture.tasks import get_queue
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from nurture.tasks.worker import SendWorker
from tests.conftest import ats_post, auth_headers, make_app, running_app

WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}


@pytest.fixture
def system(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def drip(app: Flask, steps: list[dict[str, Any]], **fields: Any) -> int:
    client = app.test_client()
    headers = auth_headers(app, "editor")
    body = {"name": "Drip", "entry": {"ats_event": "candidate.rejected"}, "steps": steps, **fields}
    answer = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert answer.status_code == 201, answer.json
    client.post(f"/api/v1/campaigns/{answer.json['id']}/activate", headers=headers)
    return answer.json["id"]


def reject(app: Flask, email: str, **fields: Any) -> None:
    payload = {"type": "candidate.rejected", "candidate": {"email": email, **fields}}
    assert ats_post(app.test_client(), payload).status_code == 200


def tick_and_work(app: Flask) -> int:
    """A scheduler pass, then a real RQ worker in burst mode; returns how many were enqueued."""
    enqueued = run_tick(app).enqueued
    queue = get_queue(app)
    SendWorker([queue], connection=queue.connection).work(burst=True)
    return enqueued


def message_of(email: str) -> Message:
    db.session.expire_all()
    return db.session.scalar(
        select(Message).join(Candidate).where(Candidate.email == email).order_by(Message.id)
    )


@pytest.mark.parametrize(
    ("tz", "friday_evening", "monday_nine"),
    [
        # New York springs forward on 8 March 2026: Friday is EST (UTC-5), Monday EDT (UTC-4).
        ("America/New_York", datetime(2026, 3, 6, 22, 30), datetime(2026, 3, 9, 13, 0)),
        # London springs forward on 29 March 2026: Friday is GMT, Monday BST (UTC+1).
        ("Europe/London", datetime(2026, 3, 27, 17, 30), datetime(2026, 3, 30, 8, 0)),
        # ...and falls back on 25 October 2026.
        ("Europe/London", datetime(2026, 10, 23, 16, 30), datetime(2026, 10, 26, 9, 0)),
    ],
)
def test_outside_the_window_the_mail_goes_at_the_windows_start_in_the_candidates_zone(
    system: Flask,
    clock,
    smtp: SmtpCapture,
    tz: str,
    friday_evening: datetime,
    monday_nine: datetime,
) -> None:
    monday_nine = monday_nine.replace(tzinfo=UTC)
    clock.set(friday_evening.replace(tzinfo=UTC))
    drip(
        system,
        [
            {"delay": "PT0S", "template": "rejection_followup"},
            {"delay": "P1D", "template": "checkin_3_months"},
        ],
        send_window=WEEKDAYS,
    )
    reject(system, "far@example.org", timezone=tz)
    # Friday after 17:00 on the candidate's clock: tried, and deferred to Monday 09:00 there.
    assert tick_and_work(system) == 1
    assert smtp.messages == []
    message = message_of("far@example.org")
    assert (message.state, message.retry_at, message.attempts) == ("queued", monday_nine, 0)
    # Over the weekend, and up to the minute before, nothing goes.
    clock.set(monday_nine - timedelta(minutes=1))
    assert tick_and_work(system) == 0
    assert smtp.messages == []
    clock.set(monday_nine)
    assert tick_and_work(system) == 1
    smtp.wait_for(1)
    message = message_of("far@example.org")
    assert (message.state, message.sent_at) == ("sent", monday_nine)
    # The drip goes on from the real send: the next step is a day after it.
    enrolment = db.session.scalar(select(Enrolment))
    assert enrolment.next_send_at == monday_nine + timedelta(days=1)


def test_a_candidate_without_a_zone_uses_the_team_zone(
    sqlite_url, clock, smtp: SmtpCapture, redis_url
) -> None:
    app = make_app(
        sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url, TEAM_TIMEZONE="Asia/Tokyo"
    )
    with app.app_context():
        try:
            clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # Monday 18:00 in Tokyo
            drip(app, [{"delay": "PT0S", "template": "rejection_followup"}], send_window=WEEKDAYS)
            reject(app, "tokyo@example.org")
            tick_and_work(app)
            # Tuesday 09:00 JST is Tuesday 00:00 UTC.
            assert message_of("tokyo@example.org").retry_at == datetime(2026, 3, 3, tzinfo=UTC)
        finally:
            close_sender(app)
            db.session.remove()
            db.engine.dispose()


def test_the_frequency_cap_defers_the_third_mail_until_the_cap_allows(
    system: Flask, clock, smtp: SmtpCapture
) -> None:
    start = clock.now()
    drip(
        system,
        [
            {"delay": "PT0S", "template": "rejection_followup"},
            {"delay": "P1D", "template": "talent_network_invite"},
            {"delay": "P1D", "template": "checkin_3_months"},
        ],
    )
    reject(system, "busy@example.org")
    assert tick_and_work(system) == 1
    clock.advance(timedelta(days=1))
    assert tick_and_work(system) == 1
    smtp.wait_for(2)
    clock.advance(timedelta(days=1))
    assert tick_and_work(system) == 1  # the third is created and tried...
    assert len(smtp.messages) == 2  # ...but two went out in the last 7 days: deferred
    third = db.session.scalars(select(Message).order_by(Message.id)).all()[-1]
    # The first mail leaves the 7-day window at start + 7 days: then there is room again.
    assert (third.state, third.retry_at) == ("queued", start + timedelta(days=7))
    clock.set(start + timedelta(days=7) - timedelta(minutes=1))
    assert tick_and_work(system) == 0
    clock.set(start + timedelta(days=7))
    assert tick_and_work(system) == 1
    smtp.wait_for(3)
    assert [m.state for m in db.session.scalars(select(Message))] == ["sent"] * 3


def test_a_paused_candidate_is_mailed_when_the_pause_ends(
    system: Flask, clock, smtp: SmtpCapture
) -> None:
    drip(system, [{"delay": "PT0S", "template": "rejection_followup"}])
    reject(system, "resting@example.org")
    candidate = db.session.scalar(select(Candidate))
    back = clock.now() + timedelta(days=90)
    candidate.paused_until = back
    db.session.commit()
    tick_and_work(system)
    assert smtp.messages == []
    assert message_of("resting@example.org").retry_at == back
    clock.set(back)
    assert tick_and_work(system) == 1
    smtp.wait_for(1)
