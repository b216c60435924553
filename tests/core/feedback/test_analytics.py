"""Analytics counted in SQL, on SQLite and PostgreSQL: health, days, and campaigns to look at."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask

from nurture.core.feedback.analytics import (
    campaign_overview,
    campaigns_needing_attention,
    daily_series,
    network_health,
)
from nurture.extensions import db
from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    Enrolment,
    EnrolmentStatus,
    Event,
    EventKind,
    Message,
    Step,
)
from tests.conftest import START, make_app

NOW = START  # Monday 2026-03-02 09:00 UTC
_n = itertools.count(1)


@pytest.fixture
def app(database_url, clock) -> Iterator[Flask]:
    """The app on a fresh database of each backend (no Redis or SMTP needed)."""
    app = make_app(
        database_url, clock, REDIS_URL="redis://127.0.0.1:1/0", SMTP_URL="smtp://127.0.0.1:1"
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def candidate(status: str = "active") -> Candidate:
    n = next(_n)
    person = Candidate(
        email=f"c{n}@example.org", first_name=f"C{n}", status=status, created_at=NOW, updated_at=NOW
    )
    db.session.add(person)
    db.session.flush()
    return person


def campaign(
    status: str = "active",
    *,
    age: timedelta = timedelta(days=30),
    updated: timedelta | None = None,
    steps: int = 1,
) -> Campaign:
    n = next(_n)
    drip = Campaign(
        name=f"Campaign {n}",
        status=status,
        created_at=NOW - age,
        updated_at=NOW - (updated if updated is not None else age),
        steps=[
            Step(position=i, delay="P1D", delay_seconds=86400, template="rejection_followup")
            for i in range(steps)
        ],
    )
    db.session.add(drip)
    db.session.flush()
    return drip


def message(
    drip: Campaign,
    person: Candidate,
    state: str = "sent",
    sent_at: datetime | None = NOW,
    step: int = 0,
) -> Message:
    mail = Message(
        candidate_id=person.id,
        campaign_id=drip.id,
        step_id=drip.steps[step].id,
        state=state,
        queued_at=(sent_at or NOW) - timedelta(minutes=1),
        sent_at=sent_at if state == "sent" else None,
    )
    db.session.add(mail)
    db.session.flush()
    return mail


def event(mail: Message, kind: str, at: datetime, machine: bool = False) -> Event:
    hit = Event(
        message_id=mail.id,
        candidate_id=mail.candidate_id,
        kind=kind,
        machine=machine,
        created_at=at,
    )
    db.session.add(hit)
    db.session.flush()
    return hit


def enrol(drip: Campaign, person: Candidate, status: str = "active") -> Enrolment:
    row = Enrolment(
        candidate_id=person.id,
        campaign_id=drip.id,
        status=status,
        created_at=NOW,
        next_send_at=NOW if status == "active" else None,
    )
    db.session.add(row)
    db.session.flush()
    return row


# --- network health ------------------------------------------------------------------------------


def test_network_health_counts_statuses_engagement_and_recent_sends(app) -> None:
    drip = campaign()
    people = [candidate() for _ in range(5)]
    for status in ("unsubscribed", "bounced", "bounced", "hired", "erased"):
        candidate(status)
    a, b, c, d, e = people
    # a: two human opens (one candidate); b: only a privacy proxy; c: a click just inside
    # 30 days; d: an open just outside; e: a click after "now" (a clock skew) is not counted.
    event(message(drip, a), EventKind.OPEN, NOW - timedelta(days=1))
    event(
        message(drip, a, step=0, sent_at=NOW - timedelta(days=2)),
        EventKind.OPEN,
        NOW - timedelta(hours=1),
    )
    event(message(drip, b), EventKind.OPEN, NOW - timedelta(days=1), machine=True)
    event(
        message(drip, c, sent_at=NOW - timedelta(days=8)),
        EventKind.CLICK,
        NOW - timedelta(days=30) + timedelta(seconds=1),
    )
    event(
        message(drip, d, sent_at=NOW - timedelta(days=40)),
        EventKind.OPEN,
        NOW - timedelta(days=30) - timedelta(seconds=1),
    )
    event(
        message(drip, e, sent_at=NOW - timedelta(days=7)),
        EventKind.CLICK,
        NOW + timedelta(seconds=1),
    )
    message(drip, e, state="failed", sent_at=None)
    message(drip, d, state="queued", sent_at=None)
    db.session.commit()

    health = network_health(db.session, NOW)

    assert health["active"] == 5
    assert (health["unsubscribed"], health["bounced"], health["hired"]) == (1, 2, 1)
    assert health["total"] == 9  # the erased one is no longer anyone
    assert health["engaged_30d"] == 2  # a and c
    # a×2, b and e (exactly 7 days ago); not c (8 days), d (40 days), nor failed/queued mail.
    assert health["sent_7d"] == 4


# --- days ----------------------------------------------------------------------------------------


def test_daily_series_puts_each_hit_on_its_utc_day_and_skips_machines(app) -> None:
    drip, other = campaign(), campaign()
    a, b, c = candidate(), candidate(), candidate()
    feb28, mar1, mar2 = (
        datetime(2026, 2, 28, tzinfo=NOW.tzinfo),
        datetime(2026, 3, 1, tzinfo=NOW.tzinfo),
        datetime(2026, 3, 2, tzinfo=NOW.tzinfo),
    )
    message(drip, a, sent_at=feb28 - timedelta(seconds=1))  # the day before the window
    first = message(drip, a, sent_at=feb28)  # the window's first instant
    message(drip, b, sent_at=mar1 + timedelta(hours=23, minutes=59, seconds=59))
    second = message(drip, b, sent_at=mar2)
    message(drip, c, state="failed", sent_at=None)
    theirs = message(other, c, sent_at=mar1 + timedelta(hours=12))
    event(first, EventKind.OPEN, mar1 + timedelta(hours=8))
    event(first, EventKind.OPEN, mar1 + timedelta(hours=9))  # the same person again that day
    event(second, EventKind.OPEN, mar1 + timedelta(hours=23, minutes=59, seconds=59))
    event(second, EventKind.OPEN, mar1 + timedelta(hours=10), machine=True)
    event(second, EventKind.CLICK, mar2)
    event(theirs, EventKind.OPEN, mar1 + timedelta(hours=13))
    event(theirs, EventKind.OPEN, feb28 - timedelta(seconds=1))  # before the window
    db.session.commit()

    ours = daily_series(db.session, NOW, days=3, campaign_id=drip.id)
    everyone = daily_series(db.session, NOW, days=3)

    assert ours == [
        {"day": "2026-02-28", "sent": 1, "opened": 0, "clicked": 0},
        {"day": "2026-03-01", "sent": 1, "opened": 2, "clicked": 0},
        {"day": "2026-03-02", "sent": 1, "opened": 0, "clicked": 1},
    ]
    assert everyone == [
        {"day": "2026-02-28", "sent": 1, "opened": 0, "clicked": 0},
        {"day": "2026-03-01", "sent": 2, "opened": 3, "clicked": 0},
        {"day": "2026-03-02", "sent": 1, "opened": 0, "clicked": 1},
    ]


def test_daily_series_has_every_day_even_without_mail(app) -> None:
    series = daily_series(db.session, NOW, days=30)

    assert len(series) == 30
    assert series[0]["day"] == "2026-02-01" and series[-1]["day"] == "2026-03-02"
    assert all(day["sent"] == day["opened"] == day["clicked"] == 0 for day in series)


# --- campaigns -----------------------------------------------------------------------------------


def test_campaign_overview_counts_steps_enrolments_and_a_weeks_sends(app) -> None:
    drip = campaign(steps=3)
    quiet = campaign(status="draft", age=timedelta(days=1))
    people = [candidate() for _ in range(3)]
    enrol(drip, people[0])
    enrol(drip, people[1], status=EnrolmentStatus.COMPLETED)
    enrol(drip, people[2], status=EnrolmentStatus.EXITED)
    message(drip, people[0], sent_at=NOW - timedelta(days=1))
    message(drip, people[1], sent_at=NOW - timedelta(days=9))
    db.session.commit()

    rows = {row["campaign"].id: row for row in campaign_overview(db.session, NOW)}
    drafts = campaign_overview(db.session, NOW, status="draft")

    assert {k: rows[drip.id][k] for k in ("steps", "enrolled", "active", "sent_7d")} == {
        "steps": 3,
        "enrolled": 3,
        "active": 1,
        "sent_7d": 1,
    }
    assert {k: rows[quiet.id][k] for k in ("steps", "enrolled", "active", "sent_7d")} == {
        "steps": 1,
        "enrolled": 0,
        "active": 0,
        "sent_7d": 0,
    }
    assert [row["campaign"].id for row in drafts] == [quiet.id]


def test_campaigns_needing_attention_and_why(app) -> None:
    paused = campaign(CampaignStatus.PAUSED)
    enrol(paused, candidate())
    enrol(paused, candidate())
    paused_empty = campaign(CampaignStatus.PAUSED)

    bouncing = campaign()  # 2 bounces of 20 sent: 10 %
    fine = campaign()  # 1 unsubscribe of 20 sent: 5 %, not above the threshold
    small = campaign()  # 5 bounces of 19 sent: too few sent to judge
    for drip, sent, bad, kind in (
        (bouncing, 20, 2, EventKind.BOUNCE),
        (fine, 20, 1, EventKind.UNSUBSCRIBE),
        (small, 19, 5, EventKind.BOUNCE),
    ):
        for n in range(sent):
            mail = message(drip, candidate(), sent_at=NOW - timedelta(days=1))
            if n < bad:
                event(mail, kind, NOW - timedelta(hours=20))
                # An open next to it is not bad news and must not count.
                event(mail, EventKind.OPEN, NOW - timedelta(hours=20))

    failing = campaign()
    message(failing, candidate(), sent_at=NOW - timedelta(days=1))
    message(failing, candidate(), state="failed", sent_at=None)

    idle = campaign(updated=timedelta(days=15))
    message(idle, candidate(), sent_at=NOW - timedelta(days=15))
    campaign(updated=timedelta(days=3))  # activated recently: nothing due yet is normal
    old_draft = campaign(CampaignStatus.DRAFT, age=timedelta(days=8))
    campaign(CampaignStatus.DRAFT, age=timedelta(days=6))
    archived = campaign(CampaignStatus.ARCHIVED, age=timedelta(days=90))
    message(archived, candidate(), state="failed", sent_at=None)
    db.session.commit()

    found = campaigns_needing_attention(db.session, NOW)
    reasons = {(a.campaign_id, a.reason) for a in found}

    assert reasons == {
        (bouncing.id, "bounce rate 10.0% (2 of 20 sent)"),
        (failing.id, "1 message failed in the last 30 days"),
        (paused.id, "paused with 2 candidates waiting for their next mail"),
        (idle.id, "active, but nothing sent in the last 14 days"),
        (old_draft.id, "a draft for 8 days: activate it or archive it"),
    }
    assert paused_empty.id not in {a.campaign_id for a in found}
    # The serious ones first.
    assert [a.severity for a in found] == ["bad", "bad", "warn", "warn", "warn"]
