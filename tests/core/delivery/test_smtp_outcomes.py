"""SMTP outcomes: what each failure means, retries with backoff, bounces, deferrals, the breaker."""

from __future__ import annotations

import random
import smtplib
from datetime import timedelta

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import select

from nurture.core import addresses
from nurture.core.delivery.circuit import BREAKER_KEY, CircuitBreaker, MemoryStore, read_status
from nurture.core.delivery.scheduling import create_due_messages, messages_to_enqueue
from nurture.core.delivery.smtp import DeliveryUnknown, Failure, backoff, classify
from nurture.dev.embedded import SmtpCapture, free_port
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Event, EventKind, Message, MessageState
from nurture.tasks.sending import close_sender, send_messages, sender_for
from nurture.tasks.stores import RedisStore
from tests.conftest import START, ats_post, auth_headers, make_app, running_app

DRIP = {
    "name": "Follow-up",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [{"delay": "PT0S", "template": "rejection_followup"}],
}


@pytest.fixture
def mail_config() -> dict:
    """Settings a test overrides with ``@pytest.mark.parametrize("mail_config", …)``."""
    return {}


@pytest.fixture
def mail_app(database_url, clock, smtp: SmtpCapture, redis_url, mail_config):
    """The app on both databases, mailing the test SMTP server."""
    config = {"SMTP_URL": smtp.url, "REDIS_URL": redis_url, "FREQUENCY_CAP": {}, **mail_config}
    with running_app(database_url, clock, **config) as app:
        yield app


def enrol(app: Flask, count: int) -> list[int]:
    """``count`` rejected candidates enrolled in a one-step drip; their queued message ids."""
    client = app.test_client()
    headers = auth_headers(app, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    for n in range(count):
        person = {"email": f"person{n}@example.org", "first_name": f"P{n}", "role": "Engineer"}
        ats_post(client, {"type": "candidate.rejected", "candidate": person})
    created, _ = create_due_messages(db.session, app.extensions["nurture.clock"].now())
    assert created == count
    return list(db.session.scalars(select(Message.id).order_by(Message.id)))


def reload(message_id: int) -> Message:
    db.session.expire_all()
    message = db.session.get(Message, message_id)
    assert message is not None
    return message


# --- what a failure means ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "transient", "bounce", "relay"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x.org": (550, b"5.1.1 no such user")}), False, "hard",
         False),
        (smtplib.SMTPRecipientsRefused({"a@x.org": (450, b"4.2.1 try later")}), True, "", False),
        (smtplib.SMTPRecipientsRefused({"a@x.org": (452, b"4.2.2 mailbox full")}), True, "soft",
         False),
        (smtplib.SMTPRecipientsRefused({"a@x.org": (421, b"4.3.2 shutting down")}), True, "",
         True),
        (smtplib.SMTPDataError(550, b"5.1.1 mailbox unknown"), False, "hard", False),
        (smtplib.SMTPDataError(550, b"mailbox unavailable"), False, "hard", False),
        (smtplib.SMTPDataError(552, b"5.2.2 mailbox full"), True, "soft", False),
        (smtplib.SMTPDataError(554, b"5.7.1 message looks like spam"), False, "", False),
        (smtplib.SMTPDataError(421, b"4.3.0 try again"), True, "", True),
        (smtplib.SMTPDataError(451, b"4.3.0 local error"), True, "", True),
        (smtplib.SMTPSenderRefused(550, b"5.7.1 sender not allowed", "t@x.org"), True, "", True),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), True, "", True),
        (ConnectionRefusedError(111, "Connection refused"), True, "", True),
        (TimeoutError("timed out"), True, "", True),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True, "", True),
    ],
)  # fmt: skip
def test_each_failure_is_classified(exc, transient, bounce, relay) -> None:
    failure = classify(exc)
    assert (failure.transient, failure.bounce, failure.relay) == (transient, bounce, relay)
    assert not failure.unknown
    if isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
        assert str(failure.code) in failure.text  # the code and the text reach the message


def test_no_reply_after_the_content_is_an_unknown_outcome() -> None:
    failure = classify(DeliveryUnknown("no reply after the message was sent"))
    assert failure == Failure(True, None, failure.text, relay=True, unknown=True)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    base, cap = timedelta(seconds=60), timedelta(hours=4)
    for attempt in range(1, 12):
        nominal = 60 * 2 ** (attempt - 1)
        delays = [backoff(attempt, base, cap, rng).total_seconds() for _ in range(200)]
        if nominal * 1.2 <= 4 * 3600:
            assert 0.8 * nominal <= min(delays) and max(delays) <= 1.2 * nominal
        else:
            assert 0.8 * 4 * 3600 <= min(delays) and max(delays) <= 4 * 3600
        assert len({round(d, 3) for d in delays}) > 100  # spread, not all equal
    assert backoff(1, base, cap, random.Random(1)) != backoff(1, base, cap, random.Random(2))


# --- the circuit breaker -------------------------------------------------------------------


def test_the_breaker_opens_after_n_failures_and_a_trial_closes_it() -> None:
    store = MemoryStore()
    breaker = CircuitBreaker(3, timedelta(minutes=5), store)
    assert breaker.open_until(START) is None
    assert not breaker.failure("421 busy", START)
    breaker.success()  # a success in between resets the count
    assert not breaker.failure("421 busy", START)
    assert not breaker.failure("421 busy", START)
    assert breaker.failure("ConnectionRefusedError: refused", START + timedelta(seconds=1))
    until = START + timedelta(seconds=1, minutes=5)
    assert breaker.open_until(START + timedelta(minutes=1)) == until
    status = read_status(store)
    assert status is not None and status.reason == "ConnectionRefusedError: refused"
    assert (status.since, status.until, status.failures) == (START + timedelta(seconds=1), until, 3)
    # Past the cooldown: half-open; a failed trial opens it for another cooldown.
    assert breaker.open_until(until) is None and breaker.half_open
    assert breaker.failure("421 still busy", until)
    assert breaker.open_until(until) == until + timedelta(minutes=5)
    assert read_status(store).since == START + timedelta(seconds=1)  # paused since the start
    # The next trial works: closed, and the shared state is gone.
    breaker.success()
    assert breaker.open_until(until + timedelta(minutes=5)) is None and not breaker.half_open
    assert store.load() is None


def test_every_worker_sees_an_open_breaker_through_redis(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    one = CircuitBreaker(2, timedelta(minutes=5), RedisStore(redis))
    two = CircuitBreaker(2, timedelta(minutes=5), RedisStore(redis))
    one.failure("421 busy", START)
    one.failure("421 busy", START)
    two.sync()
    assert two.open_until(START) == START + timedelta(minutes=5)
    # A trial by the first worker closes it for the second too.
    one.success()
    two.sync()
    assert two.open_until(START) is None and not two.half_open
    assert redis.get(BREAKER_KEY) is None
    redis.close()


def test_after_the_cooldown_only_one_worker_makes_the_trial_send(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    one = CircuitBreaker(1, timedelta(minutes=5), RedisStore(redis))
    two = CircuitBreaker(1, timedelta(minutes=5), RedisStore(redis))
    one.failure("421 busy", START)
    until = START + timedelta(minutes=5)
    two.sync()
    # Half-open: the first to ask sends the trial (and may go on asking), the other waits.
    assert one.open_until(until) is None and one.open_until(until) is None
    assert two.open_until(until) == until + timedelta(seconds=60)
    # The trial fails: another cooldown for both, and a new trial after it.
    one.failure("421 still busy", until)
    later = until + timedelta(minutes=5)
    two.sync()
    assert two.open_until(until) == later
    assert two.open_until(later) is None and one.open_until(later) == later + timedelta(minutes=1)
    # The second worker's trial works: both send again.
    two.success()
    one.sync()
    assert one.open_until(later) is None and not one.half_open
    redis.close()


def test_a_breaker_without_redis_still_works_alone() -> None:
    breaker = CircuitBreaker(
        1, timedelta(minutes=1), RedisStore(Redis.from_url("redis://127.0.0.1:1"))
    )
    breaker.sync()
    assert breaker.failure("timeout", START)
    assert breaker.open_until(START) == START + timedelta(minutes=1)


# --- outcomes recorded by the sending service ----------------------------------------------


def test_a_temporary_failure_waits_for_its_backoff(mail_app: Flask, smtp: SmtpCapture, clock):
    ids = enrol(mail_app, 1)
    smtp.fail_next("421 4.3.0 try again later")
    assert send_messages(ids) == {"queued": 1}
    message = reload(ids[0])
    assert message.state == "queued" and message.attempts == 1
    assert message.error.startswith("attempt 1 of 5: 421 4.3.0 try again later")
    wait = (message.retry_at - clock.now()).total_seconds()
    assert 48 <= wait <= 72  # 60 s ± 20 %
    # The scheduler leaves it alone until then, and picks it up after.
    assert messages_to_enqueue(db.session, clock.now(), timedelta(minutes=2)) == []
    clock.advance(timedelta(seconds=wait - 1))
    assert messages_to_enqueue(db.session, clock.now(), timedelta(minutes=2)) == []
    clock.advance(timedelta(seconds=1))
    assert messages_to_enqueue(db.session, clock.now(), timedelta(minutes=2)) == ids
    assert send_messages(ids) == {"sent": 1}
    assert len(smtp.messages) == 1 and reload(ids[0]).error == ""


@pytest.mark.parametrize("mail_config", [{"SMTP_MAX_ATTEMPTS": 3}])
def test_after_the_last_attempt_the_message_fails_with_the_reason(
    mail_app: Flask, smtp: SmtpCapture, clock
) -> None:
    ids = enrol(mail_app, 1)
    smtp.fail_next("451 4.3.0 local problem", times=3)
    waits = []
    for _attempt in (1, 2):
        assert send_messages(ids) == {"queued": 1}
        message = reload(ids[0])
        waits.append((message.retry_at - clock.now()).total_seconds())
        clock.set(message.retry_at)
    assert send_messages(ids) == {"failed": 1}
    message = reload(ids[0])
    assert message.attempts == 3
    assert message.error == "gave up after 3 attempts: 451 4.3.0 local problem"
    assert 48 <= waits[0] <= 72 and 96 <= waits[1] <= 144  # doubling
    # A relay problem says nothing about the address: not a bounce, not suppressed.
    candidate = db.session.get(Candidate, message.candidate_id)
    assert candidate.status == "active"
    assert not addresses.is_suppressed(db.session, candidate.email)
    assert db.session.get(Enrolment, message.enrolment_id).exit_reason == "send_failed"
    assert send_messages(ids) == {}  # never again
    assert smtp.messages == []


def test_a_hard_bounce_fails_suppresses_and_ends_the_drips(mail_app: Flask, smtp: SmtpCapture):
    ids = enrol(mail_app, 2)
    smtp.fail_next("550 5.1.1 mailbox unknown")
    assert send_messages(ids) == {"failed": 1, "sent": 1}
    message = db.session.scalar(select(Message).where(Message.state == MessageState.FAILED))
    assert message.error == "hard bounce: 550 5.1.1 mailbox unknown"
    assert message.retry_at is None and message.attempts == 1
    candidate = db.session.get(Candidate, message.candidate_id)
    assert candidate.status == "bounced"
    assert addresses.suppression_reason(db.session, candidate.email) == "bounced"
    event = db.session.scalar(select(Event).where(Event.kind == EventKind.BOUNCE))
    assert (event.message_id, event.candidate_id, event.value) == (message.id, candidate.id, "hard")
    enrolment = db.session.get(Enrolment, message.enrolment_id)
    assert enrolment.status == "exited" and enrolment.exit_reason == "bounced"
    assert send_messages([message.id]) == {}


def test_a_content_refusal_fails_without_suppressing_the_address(
    mail_app: Flask, smtp: SmtpCapture
) -> None:
    ids = enrol(mail_app, 1)
    smtp.fail_next("554 5.7.1 message refused as spam")
    assert send_messages(ids) == {"failed": 1}
    message = reload(ids[0])
    assert message.error == "refused: 554 5.7.1 message refused as spam"
    candidate = db.session.get(Candidate, message.candidate_id)
    assert candidate.status == "active"
    assert not addresses.is_suppressed(db.session, candidate.email)


def test_a_full_mailbox_is_a_soft_bounce_retried_later(mail_app: Flask, smtp: SmtpCapture, clock):
    ids = enrol(mail_app, 1)
    smtp.fail_next("552 5.2.2 mailbox full", times=2)
    assert send_messages(ids) == {"queued": 1}
    clock.set(reload(ids[0]).retry_at)
    assert send_messages(ids) == {"queued": 1}
    message = reload(ids[0])
    candidate = db.session.get(Candidate, message.candidate_id)
    # One soft bounce per message, however often it is retried; the address stays.
    events = db.session.scalars(select(Event.value).where(Event.kind == EventKind.BOUNCE)).all()
    assert events == ["soft"] and candidate.soft_bounces == 1 and candidate.status == "active"
    clock.set(message.retry_at)
    assert send_messages(ids) == {"sent": 1}
    assert len(smtp.messages) == 1


def test_an_unreachable_relay_opens_the_breaker_and_the_batch_waits(
    database_url, clock, redis_url
) -> None:
    """Nothing listens on the relay's port: 3 failed attempts, then the rest wait, uncounted."""
    dead = f"smtp://127.0.0.1:{free_port()}"
    app = make_app(
        database_url, clock, SMTP_URL=dead, REDIS_URL=redis_url, FREQUENCY_CAP={},
        SMTP_BREAKER_THRESHOLD=3, SMTP_BREAKER_COOLDOWN_SECONDS=600,
    )  # fmt: skip
    with app.app_context():
        try:
            ids = enrol(app, 5)
            assert send_messages(ids) == {"queued": 3, "deferred": 2}
            until = clock.now() + timedelta(minutes=10)
            messages = [reload(i) for i in ids]
            assert [m.attempts for m in messages] == [1, 1, 1, 0, 0]
            assert all(m.state == "queued" for m in messages)
            # Failures before the pause keep their backoff (a job then finds the relay paused);
            # the one that opened it and the rest of the batch wait for the pause to end.
            assert all(m.retry_at < until for m in messages[:2]) and messages[2].retry_at >= until
            assert [m.retry_at for m in messages[3:]] == [until, until]
            status = read_status(RedisStore(Redis.from_url(redis_url)))
            assert status.failures == 3 and "ConnectionRefusedError" in status.reason
            # A job arriving during the pause claims nothing and spends no attempt.
            clock.advance(timedelta(minutes=5))
            # (the two earlier failures are held to its end; the others already wait for it)
            assert send_messages(ids) == {"deferred": 2}
            assert [reload(i).attempts for i in ids] == [1, 1, 1, 0, 0]
            # The dashboard says why, since when, and when it tries again.
            client = app.test_client()
            with client.session_transaction() as session:
                session["_user_id"] = _user(app)
                session["_fresh"] = True
            page = client.get("/admin/").get_data(as_text=True)
            assert 'id="smtp-paused"' in page and "ConnectionRefusedError" in page
            assert "failed 3 times in a row" in page and until.strftime("%H:%M") in page
        finally:
            close_sender(app)
            db.session.remove()
            db.engine.dispose()


def _user(app: Flask) -> str:
    """A new viewer's session id, as Flask-Login keeps it (the row and its session nonce)."""
    from nurture.core.accounts.users import create_user

    user = create_user(db.session, "ops@example.com", "correct horse battery", "viewer", START)
    db.session.commit()
    return user.get_id()


def test_the_dashboard_shows_no_banner_while_the_relay_works(app: Flask) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = _user(app)
    page = client.get("/admin/").get_data(as_text=True)
    assert "Talent network" in page and "smtp-paused" not in page


@pytest.mark.parametrize("mail_config", [{"SMTP_DOMAIN_RATES": {"example.org": 0.01, "*": 50}}])
def test_a_domain_out_of_budget_defers_without_spending_an_attempt(
    mail_app: Flask, smtp: SmtpCapture, clock
) -> None:
    ids = enrol(mail_app, 3)
    assert send_messages(ids) == {"sent": 1, "deferred": 2}
    deferred = [reload(i) for i in ids[1:]]
    assert all(m.state == "queued" and m.attempts == 0 for m in deferred)
    # Back a little later (one slot per 100 s at this rate), not slept on.
    assert all(
        timedelta(seconds=1) <= m.retry_at - clock.now() <= timedelta(seconds=101) for m in deferred
    )
    assert len(smtp.messages) == 1


def test_a_paused_relay_never_brings_a_later_deferral_forward(mail_app: Flask, clock) -> None:
    ids = enrol(mail_app, 2)
    tomorrow = clock.now() + timedelta(days=1)
    reload(ids[1]).retry_at = tomorrow  # say, outside the candidate's send window
    db.session.commit()
    breaker = sender_for(mail_app).breaker
    for _ in range(breaker.threshold):
        breaker.failure("421 busy", clock.now())
    assert send_messages(ids) == {"deferred": 1}
    assert reload(ids[0]).retry_at == breaker.open_until(clock.now())
    assert reload(ids[1]).retry_at == tomorrow
    assert [reload(i).attempts for i in ids] == [0, 0]
