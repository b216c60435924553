"""The scheduler: the database says what is due; Redis only carries ids and may lose them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Enrolment, Message, MessageState
from nurture.tasks import get_queue
from nurture.tasks.scheduling import run_tick
from nurture.tasks.worker import SendWorker
from tests.conftest import ats_post, auth_headers, running_app

DRIP = {
    "name": "Two steps",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {"delay": "P1D", "template": "rejection_followup"},
        {"delay": "P3D", "template": "checkin_3_months"},
    ],
}


@pytest.fixture
def system(database_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(database_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def start(app: Flask, people: int) -> int:
    client = app.test_client()
    headers = auth_headers(app, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    for n in range(people):
        person = {"email": f"p{n}@example.org", "first_name": f"P{n}"}
        ats_post(client, {"type": "candidate.rejected", "candidate": person})
    return campaign


def work(app: Flask) -> None:
    """Run nurture's RQ worker in burst mode until the queue is empty."""
    queue = get_queue(app)
    SendWorker([queue], connection=queue.connection).work(burst=True)


def count(state: str) -> int:
    return db.session.scalar(select(func.count()).where(Message.state == state))


def test_nothing_is_created_before_it_is_due(system: Flask, clock) -> None:
    start(system, 2)
    assert run_tick(system).created == 0
    clock.advance(timedelta(hours=23))
    assert run_tick(system).created == 0
    clock.advance(timedelta(hours=1))
    result = run_tick(system)
    assert (result.created, result.enqueued) == (2, 2)
    # A second pass finds nothing new: the enrolments wait for their messages to be sent.
    assert run_tick(system).created == 0


def test_due_enrolments_become_one_message_each_in_batches(system: Flask, clock) -> None:
    from nurture.core.delivery.scheduling import create_due_messages
    from nurture.models import EnrolmentStatus, Step

    start(system, 7)
    clock.advance(timedelta(days=1))
    # Batches of three: seven enrolments, three batches, each enrolment's message made once.
    assert create_due_messages(db.session, clock.now(), batch_size=3) == (7, 0)
    assert create_due_messages(db.session, clock.now(), batch_size=3) == (0, 0)
    rows = db.session.execute(select(Message.enrolment_id, Message.step_id, Message.state)).all()
    first = db.session.scalar(select(Step.id).where(Step.position == 0))
    assert sorted(r.enrolment_id for r in rows) == sorted(db.session.scalars(select(Enrolment.id)))
    assert {(r.step_id, r.state) for r in rows} == {(first, MessageState.QUEUED)}
    assert db.session.scalar(select(func.count()).where(Enrolment.next_send_at.is_not(None))) == 0

    # A due enrolment whose step was removed has nothing left to send: it completes.
    db.session.execute(
        Enrolment.__table__.update().values(next_position=5, next_send_at=clock.now())
    )
    db.session.commit()
    assert create_due_messages(db.session, clock.now(), batch_size=3) == (0, 7)
    statuses = set(db.session.scalars(select(Enrolment.status)))
    assert statuses == {EnrolmentStatus.COMPLETED}
    assert count(MessageState.QUEUED) == 7


def test_a_flushed_redis_loses_no_mail_and_duplicates_none(
    system: Flask, clock, smtp: SmtpCapture
) -> None:
    start(system, 3)
    clock.advance(timedelta(days=1))
    assert run_tick(system).enqueued == 3
    Redis.from_url(system.config["REDIS_URL"]).flushall()  # the jobs are gone
    work(system)
    assert smtp.messages == [] and count(MessageState.QUEUED) == 3
    # The next pass sees that Redis lost its data and re-finds what is still queued at once...
    assert run_tick(system).enqueued == 3
    # ...and the pass after it enqueues nothing twice within the requeue window.
    assert run_tick(system).enqueued == 0
    work(system)
    assert len(smtp.messages) == 3 and count(MessageState.SENT) == 3
    # A stale duplicate job for the same ids sends nothing more.
    ids = list(db.session.scalars(select(Message.id)))
    Queue(system.config["QUEUE_NAME"], connection=get_queue(system).connection).enqueue(
        "nurture.tasks.sending.send_messages", ids
    )
    work(system)
    assert len(smtp.messages) == 3


def test_a_job_lost_while_redis_kept_its_data_comes_back_after_the_requeue_timer(
    system: Flask, clock, smtp: SmtpCapture
) -> None:
    start(system, 2)
    clock.advance(timedelta(days=1))
    assert run_tick(system).enqueued == 2
    redis = Redis.from_url(system.config["REDIS_URL"])
    redis.delete(f"rq:queue:{system.config['QUEUE_NAME']}")  # the jobs went, the rest stayed
    assert run_tick(system).enqueued == 0
    clock.advance(timedelta(seconds=system.config["REQUEUE_AFTER_SECONDS"] + 1))
    assert run_tick(system).enqueued == 2
    work(system)
    assert len(smtp.messages) == 2


def test_a_worker_that_died_mid_send_is_recovered(system: Flask, clock, smtp) -> None:
    start(system, 1)
    clock.advance(timedelta(days=1))
    run_tick(system)
    # A worker claimed the message, then was killed before the SMTP conversation.
    db.session.execute(
        Message.__table__.update().values(state=MessageState.SENDING, claimed_at=clock.now())
    )
    db.session.commit()
    Redis.from_url(system.config["REDIS_URL"]).flushall()
    clock.advance(timedelta(seconds=system.config["STUCK_AFTER_SECONDS"] + 1))
    assert run_tick(system).enqueued == 1
    work(system)
    assert len(smtp.messages) == 1


def test_pause_holds_mail_and_resume_sends_it_once(system: Flask, clock, smtp) -> None:
    campaign = start(system, 2)
    headers = auth_headers(system, "editor")
    client = system.test_client()
    clock.advance(timedelta(days=1))
    run_tick(system)
    client.post(f"/api/v1/campaigns/{campaign}/pause", headers=headers)
    work(system)
    assert smtp.messages == [] and count(MessageState.QUEUED) == 2
    clock.advance(timedelta(days=5))
    assert run_tick(system).created == 0  # paused: no new messages either
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    assert run_tick(system).enqueued == 2
    work(system)
    assert len(smtp.messages) == 2
    # The next step is due three days after the first one really went out.
    enrolment = db.session.scalar(select(Enrolment))
    assert enrolment.next_send_at == clock.now() + timedelta(days=3)


def test_housekeeping_runs_once_per_interval_by_the_injected_clock(system: Flask, clock) -> None:
    from nurture.tasks.scheduling import PERIODIC, run_periodic

    state: dict = {}
    assert run_periodic(system, state) == [job.name for job in PERIODIC]
    assert run_periodic(system, state) == []
    clock.advance(timedelta(hours=1))
    assert run_periodic(system, state) == [
        "segment entries and exits",
        "inbound mail",
        "stalled imports",
        "A/B subject tests",
        "webhook deliveries",
        "referrals",
        "pool health",
    ]
    clock.advance(timedelta(days=1))
    assert "retention" in run_periodic(system, state)
