"""Retention: quiet candidates are asked once; who confirms stays, who does not is anonymised."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from nurture.core.addresses import is_suppressed
from nurture.core.audience.candidates import upsert_candidate
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Message
from nurture.tasks.sending import send_messages
from nurture.workflows.retention import (
    RECONSENT_CAMPAIGN,
    RetentionPolicy,
    confirm_consent,
    months_before,
    retention_pass,
)
from tests.conftest import START, running_app

POLICY = RetentionPolicy(months=24, grace_days=30)


@pytest.fixture
def mail_app(database_url, clock, smtp, redis_url):
    with running_app(database_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def person(email: str, now, **fields) -> int:
    candidate, _ = upsert_candidate(db.session, {"email": email, "first_name": "X"}, now)
    for name, value in fields.items():
        setattr(candidate, name, value)
    db.session.commit()
    return candidate.id


def status_of(candidate_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Candidate, candidate_id).status


def reconsent_enrolments(candidate_id: int) -> int:
    return len(
        db.session.scalars(
            select(Enrolment).where(
                Enrolment.candidate_id == candidate_id,
                Enrolment.campaign.has(name=RECONSENT_CAMPAIGN),
            )
        ).all()
    )


def test_months_before_keeps_the_day_or_the_months_last() -> None:
    assert months_before(START, 24) == START.replace(year=2024)
    assert months_before(START.replace(year=2024, month=3, day=31), 1).day == 29  # leap year
    assert months_before(START.replace(month=3, day=31), 13) == START.replace(
        year=2025, month=2, day=28
    )


def test_the_retention_journey(mail_app, clock, smtp) -> None:
    now = clock.now()
    ana = person("ana@example.org", now)  # quiet; will confirm
    eve = person("eve@example.org", now)  # quiet; will not answer
    bo = person("bo@example.org", now)  # clicked last month: engaged
    cy = person("cy@example.org", now, status="unsubscribed")  # quiet, cannot be asked
    dee = person("dee@example.org", now, status="hired")  # an employee now: not ours to age out
    clock.advance(timedelta(days=365 * 2 + 10))
    now = clock.now()
    db.session.get(Candidate, bo).last_clicked_at = now - timedelta(days=30)
    db.session.commit()

    # Nothing happens on a dry run.
    preview = retention_pass(db.session, now, send=False, policy=POLICY)
    assert (preview.asked, preview.anonymised_unmailable) == (2, 1)
    assert db.session.scalars(select(Enrolment)).all() == []

    report = retention_pass(db.session, now, policy=POLICY)
    db.session.commit()
    assert (report.asked, report.anonymised_unanswered, report.anonymised_unmailable) == (2, 0, 1)
    assert [reconsent_enrolments(c) for c in (ana, eve, bo, cy, dee)] == [1, 1, 0, 0, 0]
    assert status_of(cy) == "erased" and is_suppressed(db.session, "cy@example.org")
    assert status_of(dee) == "hired"

    # A second pass asks nobody twice.
    assert retention_pass(db.session, now, policy=POLICY).asked == 0
    db.session.commit()
    assert [reconsent_enrolments(c) for c in (ana, eve)] == [1, 1]

    # The normal pipeline sends the re-consent mail.
    create_due_messages(db.session, now)
    ids = list(db.session.scalars(select(Message.id)))
    assert send_messages(ids) == {"sent": 2}
    subjects = {m.rcpt_tos[0]: m.as_email()["Subject"] for m in smtp.messages}
    assert subjects == {
        "ana@example.org": "Do you want to stay in the Acme Talent talent network?",
        "eve@example.org": "Do you want to stay in the Acme Talent talent network?",
    }
    ana_mail = next(m for m in smtp.messages if m.rcpt_tos == ["ana@example.org"])
    text = ana_mail.as_email().get_body(("plain",)).get_content()
    tokens = Tokens.from_config(mail_app.config)
    ana_message = db.session.scalar(select(Message.id).where(Message.candidate_id == ana))
    assert (
        tokens.reconsent_url(ana, ana_message) in text
        or f"{tokens.preferences_url(ana, ana_message)}?stay=1" in text
    )

    # Ana confirms a week later; nobody is anonymised before the grace period is over.
    clock.advance(timedelta(days=7))
    confirm_consent(db.session.get(Candidate, ana), clock.now())
    db.session.commit()
    clock.advance(timedelta(days=22))
    assert retention_pass(db.session, clock.now(), policy=POLICY).anonymised_unanswered == 0
    db.session.commit()
    assert status_of(eve) == "active"

    # Past it, Eve (who never answered) is anonymised; Ana stays, and is not asked again.
    clock.advance(timedelta(days=2))
    report = retention_pass(db.session, clock.now(), policy=POLICY)
    db.session.commit()
    assert (report.asked, report.anonymised_unanswered) == (0, 1)
    assert status_of(eve) == "erased" and is_suppressed(db.session, "eve@example.org")
    assert db.session.get(Candidate, eve).email.endswith("@erased.invalid")
    ana_now = db.session.get(Candidate, ana)
    assert (ana_now.status, ana_now.email, ana_now.consent_source) == (
        "active",
        "ana@example.org",
        "re-consent mail",
    )
    assert status_of(bo) == "active"

    # Two years on, Ana (and Bo) are quiet again: each asked once more.
    clock.advance(timedelta(days=365 * 2))
    assert retention_pass(db.session, clock.now(), policy=POLICY).asked == 2
    db.session.commit()
    assert [reconsent_enrolments(c) for c in (ana, bo)] == [2, 1]


def test_a_recent_human_event_keeps_a_candidate_out_of_retention(app, clock) -> None:
    from nurture.models import Event, EventKind

    ana = person("ana@example.org", clock.now())
    clock.advance(timedelta(days=800))
    db.session.add(
        Event(candidate_id=ana, kind=EventKind.RATING, value="5", created_at=clock.now())
    )
    db.session.add(
        Event(candidate_id=ana, kind=EventKind.OPEN, machine=True, created_at=clock.now())
    )
    db.session.commit()
    assert retention_pass(db.session, clock.now(), policy=POLICY).asked == 0
