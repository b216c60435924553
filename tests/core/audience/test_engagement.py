"""Engagement: machine hits are told apart, the summary follows human events, scores decay."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.core.audience import engagement
from nurture.core.audience import segments as seg
from nurture.core.feedback.tracking import record_event
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Event, EventKind, Message, Step
from nurture.runtime import FileClock
from tests.conftest import make_app

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML)"


@pytest.fixture
def app_on(database_url: str, clock: FileClock) -> Iterator[Flask]:
    """The app on SQLite and on PostgreSQL."""
    app = make_app(database_url, clock)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def _sent(now: datetime, email: str = "ana@example.org") -> Message:
    campaign = Campaign(name=f"C {email}", created_at=now, updated_at=now)
    db.session.add(campaign)
    db.session.flush()
    step = Step(campaign_id=campaign.id, position=0)
    candidate = Candidate(email=email, created_at=now, updated_at=now)
    db.session.add_all([step, candidate])
    db.session.flush()
    message = Message(
        candidate_id=candidate.id, campaign_id=campaign.id, step_id=step.id, state="sent",
        queued_at=now, sent_at=now,
    )  # fmt: skip
    db.session.add(message)
    db.session.flush()
    return message


@pytest.mark.parametrize(
    ("kind", "agent", "seconds", "machine"),
    [
        (EventKind.CLICK, PHONE, 3, True),  # a link scanner at delivery
        (EventKind.OPEN, PHONE, 5, True),
        (EventKind.CLICK, PHONE, 45, False),
        (EventKind.OPEN, "", 30, True),  # a privacy proxy's prefetch: no agent, at delivery
        (EventKind.OPEN, "Mozilla/5.0", 90, True),
        (EventKind.OPEN, "Mozilla/5.0", 3600, False),  # the proxy fetching for a real open
        (EventKind.OPEN, PHONE, 30, False),
        (EventKind.OPEN, "Mozilla/5.0 (compatible; GoogleImageProxy)", 3600, True),
        (EventKind.CLICK, "Mimecast URL scanner", 7200, True),
    ],
)
def test_machine_hits_are_marked(
    app: Flask, clock: FileClock, kind: EventKind, agent: str, seconds: int, machine: bool
) -> None:
    """Scanners click within seconds of delivery; proxies prefetch with a generic agent."""
    now = clock.now()
    message = _sent(now)
    human = record_event(db.session, message, kind, now + timedelta(seconds=seconds),
                         user_agent=agent)  # fmt: skip
    db.session.commit()
    assert human is not machine
    stored = db.session.execute(select(Event.kind, Event.machine, Event.user_agent)).one()
    assert tuple(stored) == (kind, machine, agent)
    candidate = db.session.get(Candidate, message.candidate_id)
    db.session.refresh(candidate)
    last = candidate.last_opened_at if kind == EventKind.OPEN else candidate.last_clicked_at
    assert (last is None) is machine
    assert (candidate.engagement_points == 0) is machine


def test_summary_follows_human_events(app_on: Flask, clock: FileClock) -> None:
    """Opens and clicks move the summary forward (never back); replies via note_engagement."""
    now = clock.now()
    message = _sent(now)
    later = now + timedelta(hours=2)
    record_event(db.session, message, EventKind.OPEN, later, user_agent=PHONE)
    record_event(db.session, message, EventKind.OPEN, now + timedelta(hours=1), user_agent=PHONE)
    record_event(db.session, message, EventKind.CLICK, later, user_agent=PHONE)
    engagement.note_engagement(db.session, message.candidate_id, EventKind.REPLY, later)
    db.session.commit()
    candidate = db.session.get(Candidate, message.candidate_id)
    db.session.refresh(candidate)
    assert candidate.last_opened_at == later
    assert candidate.last_clicked_at == later
    assert candidate.last_replied_at == later
    # Two hours after the events, the score has barely decayed from their weights.
    assert engagement.score_of(candidate, later) == pytest.approx(1 + 1 + 3 + 5, abs=0.02)
    rule = {"all": [{"opened": {"within_days": 1}}, {"replied": {"within_days": 1}}]}
    assert seg.count(db.session, rule, later) == 1


def _scores(now: datetime) -> dict[str, float]:
    db.session.expire_all()
    return {
        c.email: engagement.score(c.engagement_points, now)
        for c in db.session.scalars(select(Candidate))
    }


def test_scores_decay_with_a_30_day_half_life(app_on: Flask, clock: FileClock) -> None:
    """rebuild_points: one statement, from the events, machine hits left out; no stored number
    changes as time passes, yet every score halves a month on."""
    now = clock.now()
    ana = _sent(now - timedelta(days=90), "ana@example.org")
    bo = _sent(now - timedelta(days=90), "bo@example.org")
    cy = _sent(now - timedelta(days=400), "cy@example.org")
    rows = [
        (ana, EventKind.OPEN, 0, False),
        (ana, EventKind.CLICK, 30, False),
        (ana, EventKind.OPEN, 1, True),  # machine: ignored
        (bo, EventKind.REPLY, 60, False),
        (bo, EventKind.UNSUBSCRIBE, 1, False),  # not engagement
        (cy, EventKind.OPEN, 390, False),  # over a year ago: next to nothing
    ]
    for message, kind, days, machine in rows:
        db.session.add(
            Event(
                message_id=message.id,
                candidate_id=message.candidate_id,
                kind=kind,
                machine=machine,
                created_at=now - timedelta(days=days),
            )
        )
    nobody = _sent(now, "di@example.org")
    db.session.get(Candidate, nobody.candidate_id).engagement_points = 3.0  # stale: no events
    db.session.flush()
    assert engagement.rebuild_points(db.session) == 4
    db.session.commit()
    scores = _scores(now)
    assert scores["ana@example.org"] == pytest.approx(1 + 3 * 0.5, rel=1e-6)
    assert scores["bo@example.org"] == pytest.approx(5 * 0.25, rel=1e-6)
    assert scores["cy@example.org"] == pytest.approx(0.5**13, rel=1e-6)
    assert scores["di@example.org"] == 0
    # A month on, every score has halved, and nothing was written.
    halved = _scores(now + timedelta(days=30))
    assert halved["ana@example.org"] == pytest.approx(scores["ana@example.org"] / 2, rel=1e-9)
    assert math.isclose(halved["bo@example.org"], 5 * 0.125, rel_tol=1e-9)


def test_events_as_they_come_give_the_scores_a_rebuild_from_the_events_gives(
    app_on: Flask, clock: FileClock
) -> None:
    """note_engagement (one UPDATE per event) and rebuild_points (from the events) agree."""
    start = clock.now()
    people = [_sent(start - timedelta(days=1), f"p{i}@example.org") for i in range(3)]
    for offset, who, kind in [
        (timedelta(hours=1), 0, EventKind.OPEN),
        (timedelta(hours=7), 0, EventKind.CLICK),
        (timedelta(days=3, hours=2), 1, EventKind.OPEN),
        (timedelta(days=20), 2, EventKind.CLICK),
        (timedelta(days=41, hours=5), 0, EventKind.OPEN),
    ]:
        record_event(db.session, people[who], kind, start + offset, user_agent=PHONE)
    db.session.commit()
    end = start + timedelta(days=60)
    as_they_came = _scores(end)
    engagement.rebuild_points(db.session)
    db.session.commit()
    rebuilt = _scores(end)
    for email in rebuilt:
        assert as_they_came[email] == pytest.approx(rebuilt[email], rel=1e-9), email
    # The numbers a person would work out with 30-day half-lives.
    assert rebuilt["p1@example.org"] == pytest.approx(0.5 ** ((60 - 3 - 2 / 24) / 30), rel=1e-9)
    # "Score at least 0.6" at day 60: p0 (~1.65) and p2 (a click 40 days ago, ~1.19), not p1.
    rule = {"engagement_score": {"gte": 0.6}}
    members = seg.members(rule, end, db.session)
    emails = set(db.session.scalars(select(Candidate.email).where(Candidate.id.in_(members))))
    assert emails == {"p0@example.org", "p2@example.org"}
