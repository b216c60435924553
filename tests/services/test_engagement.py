"""Engagement: machine hits are told apart, the summary follows human events, scores decay."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.clock import FileClock
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Event, EventKind, Message, Step
from nurture.services import engagement
from nurture.services import segments as seg
from nurture.services.tracking import record_event
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
    event = record_event(db.session, message, kind, now + timedelta(seconds=seconds),
                         user_agent=agent)  # fmt: skip
    db.session.commit()
    assert event.machine is machine
    candidate = db.session.get(Candidate, message.candidate_id)
    db.session.refresh(candidate)
    last = candidate.last_opened_at if kind == EventKind.OPEN else candidate.last_clicked_at
    assert (last is None) is machine
    assert (candidate.engagement_score == 0) is machine


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
    assert candidate.engagement_score == pytest.approx(1 + 1 + 3 + 5)
    rule = {"all": [{"opened": {"within_days": 1}}, {"replied": {"within_days": 1}}]}
    assert seg.count(db.session, rule, later) == 1


def test_scores_decay_with_a_30_day_half_life(app_on: Flask, clock: FileClock) -> None:
    """recompute_scores: one statement, from the events, machine hits left out."""
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
        (cy, EventKind.OPEN, 390, False),  # outside the window
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
    db.session.get(Candidate, cy.candidate_id).engagement_score = 3.0
    db.session.flush()
    assert engagement.recompute_scores(db.session, now) == 3
    db.session.commit()
    scores = dict(db.session.execute(select(Candidate.email, Candidate.engagement_score)).all())
    assert scores["ana@example.org"] == pytest.approx(1 + 3 * 0.5, abs=1e-3)
    assert scores["bo@example.org"] == pytest.approx(5 * 0.25, abs=1e-3)
    assert scores["cy@example.org"] == 0
    # A month on, every score has halved.
    engagement.recompute_scores(db.session, now + timedelta(days=30))
    db.session.commit()
    halved = dict(db.session.execute(select(Candidate.email, Candidate.engagement_score)).all())
    assert halved["ana@example.org"] == pytest.approx(scores["ana@example.org"] / 2, abs=1e-3)
    assert math.isclose(halved["bo@example.org"], 5 * 0.125, abs_tol=1e-3)
