"""Exactly once, in one process against real servers: a Message-ID fixed by the ledger row,
send-time checks that stay fresh behind a slow relay, a COMMIT lost after the relay's 250, and
the worker leases that decide whose claimed rows go back to the queue.

The real processes and real faults are in tests/faults; these pin each mechanism down.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from nurture.core.content.mime import ledger_message_id, message_id_key
from nurture.core.delivery.leases import Lease, db_epoch
from nurture.core.delivery.scheduling import recover_orphans
from nurture.core.delivery.sending import claim
from nurture.dev.embedded import CapturedMessage, SmtpCapture
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Message, MessageState, WorkerHeartbeat
from nurture.tasks.scheduling import Watch, run_tick
from nurture.tasks.sending import send_messages, sender_for
from tests.conftest import require, running_app
from tests.core.delivery.test_sending import enrol_people

Hook = Callable[[CapturedMessage], None]


class Relay(SmtpCapture):
    """A real SMTP server whose answer to each mail a test can script (before its 250)."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        super().__init__(on_message=self._run_hooks)

    def _run_hooks(self, message: CapturedMessage) -> None:
        for hook in list(self.hooks):
            hook(message)

    def recipients(self) -> list[str]:
        return [m.rcpt_tos[0] for m in self.messages]


@pytest.fixture
def relay() -> Iterator[Relay]:
    server = Relay()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """What a test opens besides the app (closed after it, passed or not)."""
    with contextlib.ExitStack() as opened:
        yield opened


@pytest.fixture
def mail_app(database_url: str, clock, relay: Relay, redis_url: str) -> Iterator[Flask]:
    with running_app(database_url, clock, SMTP_URL=relay.url, REDIS_URL=redis_url) as app:
        yield app


@contextlib.contextmanager
def side_connection(app: Flask) -> Iterator[Engine]:
    """Another client of the same database, as the admin or the API would be."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        yield engine
    finally:
        engine.dispose()


# --- the Message-ID -------------------------------------------------------------------------


def test_a_ledger_message_id_is_fixed_by_the_row_and_keyed_by_the_secret() -> None:
    queued = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
    key = message_id_key("one secret")
    first = ledger_message_id(key, "acme.example.com", 42, queued)
    assert re.fullmatch(r"<nurture\.42\.[0-9a-f]{16}@acme\.example\.com>", first)
    assert ledger_message_id(key, "acme.example.com", 42, queued) == first
    # Another install (secret), another row, or the same id in a database started afresh:
    assert ledger_message_id(message_id_key("another"), "acme.example.com", 42, queued) != first
    assert ledger_message_id(key, "acme.example.com", 43, queued) != first
    later = queued.replace(microsecond=123457)
    assert ledger_message_id(key, "acme.example.com", 42, later) != first


def test_a_resend_after_a_crash_carries_the_first_copys_message_id(
    mail_app: Flask, relay: Relay
) -> None:
    """The relay took the mail, the worker died before recording it: the row is claimed again
    later and the copy it sends has the Message-ID of the first."""
    [message_pk] = enrol_people(mail_app, 1)
    assert send_messages([message_pk]) == {"sent": 1}
    first = relay.messages[0].as_email()["Message-ID"]
    assert db.session.get(Message, message_pk).message_id == first
    # What the database holds when the worker died between the 250 and the COMMIT.
    db.session.execute(
        update(Message)
        .where(Message.id == message_pk)
        .values(state=MessageState.QUEUED, message_id="", sent_at=None, enqueued_at=None)
    )
    db.session.commit()
    assert send_messages([message_pk]) == {"sent": 1}
    copies = [m.as_email()["Message-ID"] for m in relay.messages]
    assert copies == [first, first]
    assert first.startswith(f"<nurture.{message_pk}.")


# --- send-time checks no older than a second -------------------------------------------------


def test_a_pause_stops_a_batch_in_flight_within_a_second_behind_a_slow_relay(
    mail_app: Flask, relay: Relay, stack: contextlib.ExitStack
) -> None:
    """The relay takes a quarter of a second a mail; the campaign is paused while its batch is
    going out. Nothing leaves a second after the pause; the rest waits, and goes on resume."""
    ids = enrol_people(mail_app, 12)
    campaign_id = db.session.get(Message, ids[0]).campaign_id
    engine = stack.enter_context(side_connection(mail_app))
    paused_at: list[float] = []

    def slow(message: CapturedMessage) -> None:
        time.sleep(0.25)

    def pause_on_the_third(message: CapturedMessage) -> None:
        if len(relay.messages) == 3 and not paused_at:
            with engine.begin() as connection:
                connection.execute(
                    update(Campaign).where(Campaign.id == campaign_id).values(status="paused")
                )
            paused_at.append(time.time())

    relay.hooks += [pause_on_the_third, slow]
    outcome = send_messages(ids)
    assert paused_at, "the pause happened"
    after = [m.received_at.timestamp() - paused_at[0] for m in relay.messages]
    assert max(after) < 1.0, f"mail reached the relay {max(after):.2f} s after the pause"
    held = outcome["paused"]
    assert held >= 7 and outcome["sent"] + held == 12
    rows = db.session.execute(
        select(Message.state, Message.attempts, Message.claimed_by).where(Message.id.in_(ids))
    ).all()
    assert sorted(state for state, _, _ in rows).count("queued") == held
    assert all(attempts == 0 for state, attempts, by in rows if state == "queued")
    # Active again: the held mail goes, each once.
    db.session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="active"))
    db.session.commit()
    relay.hooks.clear()
    assert send_messages(ids) == {"sent": held}
    assert sorted(relay.recipients()) == sorted(f"person{n}@example.org" for n in range(12))


def test_an_unsubscribe_during_a_batch_is_seen_before_the_candidates_mail(
    mail_app: Flask, relay: Relay, stack: contextlib.ExitStack
) -> None:
    ids = enrol_people(mail_app, 4)
    # The batch goes in message order: its last mail is the one to stop.
    last = db.session.scalar(select(Candidate.email).join(Message).where(Message.id == max(ids)))
    db.session.commit()
    engine = stack.enter_context(side_connection(mail_app))

    def unsubscribe_the_last(message: CapturedMessage) -> None:
        if len(relay.messages) == 1:
            with engine.begin() as connection:
                connection.execute(
                    update(Candidate).where(Candidate.email == last).values(status="unsubscribed")
                )
        time.sleep(0.6)  # a slow relay: every mail's checks are read again first

    relay.hooks.append(unsubscribe_the_last)
    assert send_messages(ids) == {"sent": 3, "skipped": 1}
    assert last not in relay.recipients() and len(relay.recipients()) == 3
    skipped = db.session.scalar(select(Message).where(Message.state == MessageState.SKIPPED))
    assert skipped.error == "unsubscribed"


# --- a COMMIT lost after the relay's 250 ----------------------------------------------------


@pytest.fixture
def pg_mail_app(postgres_cluster, clock, relay: Relay, redis_url: str) -> Iterator[Flask]:
    """The app on PostgreSQL, whose sessions another client can drop (pg_terminate_backend)."""
    require(postgres_cluster is not None, "PostgreSQL server binaries")
    url = postgres_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
    with running_app(url, clock, SMTP_URL=relay.url, REDIS_URL=redis_url) as app:
        yield app


def test_a_commit_lost_after_the_relays_250_is_retried_not_resent(
    pg_mail_app: Flask, relay: Relay, stack: contextlib.ExitStack
) -> None:
    """The database drops the worker's connection while the relay holds the first mail: its
    record fails, is written once the database answers, and the mail is never sent again."""
    mail_app = pg_mail_app
    ids = enrol_people(mail_app, 5)
    engine = stack.enter_context(side_connection(mail_app))

    def drop_the_workers_connection(message: CapturedMessage) -> None:
        if len(relay.messages) == 1:
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )

    relay.hooks.append(drop_the_workers_connection)
    assert send_messages(ids) == {"sent": 1, "handed back": 4}
    first = db.session.get(Message, ids[0])
    assert first.state == MessageState.SENT
    assert first.message_id == relay.messages[0].as_email()["Message-ID"]
    relay.hooks.clear()
    assert send_messages(ids) == {"sent": 4}
    recipients = relay.recipients()
    assert sorted(recipients) == sorted(set(recipients)) and len(recipients) == 5


# --- worker leases --------------------------------------------------------------------------


def test_a_dead_workers_claims_go_back_and_a_live_workers_never(mail_app: Flask, clock) -> None:
    ids = enrol_people(mail_app, 6)
    session, now = db.session, clock.now()
    alive, dead = Lease("alive", 20, now), Lease("dead", 20, now)
    for lease in (alive, dead):
        lease.beat(session)
    session.commit()
    assert claim(session, ids[:2], now, "alive") == ids[:2]
    assert claim(session, ids[2:4], now, "dead") == ids[2:4]
    assert claim(session, ids[4:], now, "never-beat") == ids[4:]
    # "dead" stopped beating 25 s ago by the database's clock; "never-beat" has no heartbeat.
    session.execute(
        update(WorkerHeartbeat)
        .where(WorkerHeartbeat.name == "dead")
        .values(beat_at=db_epoch() - 25)
    )
    session.commit()
    assert recover_orphans(session, lease_seconds=20) == 4
    found = session.execute(
        select(Message.id, Message.state, Message.claimed_by).where(Message.id.in_(ids))
    ).all()
    states = {pk: state for pk, state, _ in found}
    rows = {pk: claimed_by for pk, _, claimed_by in found}
    assert [states[i] for i in ids] == ["sending"] * 2 + ["queued"] * 4
    assert [rows[i] for i in ids] == ["alive", "alive", None, None, None, None]
    # The live worker keeps its rows however often the scheduler looks.
    assert recover_orphans(session, lease_seconds=20) == 0


class FakeMonotonic:
    """A monotonic clock the test moves (from the relay's thread, hence the lock)."""

    def __init__(self) -> None:
        self.now, self.lock = 1000.0, threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_a_worker_whose_lease_lapsed_hands_its_batch_back_instead_of_sending(
    mail_app: Flask, relay: Relay, clock
) -> None:
    """The worker froze for longer than its lease during a mail: the scheduler may have handed
    its claims to another worker meanwhile, so it sends none of the rest."""
    ids = enrol_people(mail_app, 5)
    monotonic = FakeMonotonic()
    lease = Lease("frozen", 20, clock.now(), monotonic=monotonic)
    sender = sender_for(mail_app)
    sender.lease = lease
    relay.hooks.append(lambda message: monotonic.advance(25))
    try:
        assert send_messages(ids) == {"sent": 1, "handed back": 4}
    finally:
        sender.lease = None
    assert lease.lapses == 1
    assert len(relay.messages) == 1
    rows = db.session.execute(select(Message.state, Message.claimed_by).where(Message.id.in_(ids)))
    assert sorted(rows) == [("queued", None)] * 4 + [("sent", "frozen")]


def _short_busy_timeout(dbapi_connection, connection_record) -> None:  # noqa: ANN001
    dbapi_connection.execute("PRAGMA busy_timeout=200")


def test_after_a_database_outage_the_scheduler_gives_workers_a_lease_to_beat_again(
    sqlite_url: str, clock, redis_url: str
) -> None:
    """During an outage no worker can beat, so every heartbeat looks old when the database is
    back: the scheduler hands no claim back until it has reached the database for a lease."""
    with running_app(sqlite_url, clock, REDIS_URL=redis_url) as app:
        # A locked file fails the pass within a fifth of a second, not after 30.
        event.listen(db.engine, "connect", _short_busy_timeout)
        db.engine.dispose()
        ids = enrol_people(app, 2)
        now, session = clock.now(), db.session
        Lease("quiet", 20, now).beat(session)
        session.commit()
        assert claim(session, ids, now, "quiet") == ids
        session.execute(update(WorkerHeartbeat).values(beat_at=db_epoch() - 25))
        session.commit()
        monotonic = FakeMonotonic()
        app.extensions["nurture.scheduler"] = Watch(monotonic=monotonic)
        # The outage: another client holds the database's write lock.
        locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(OperationalError):
            run_tick(app)
        locker.execute("ROLLBACK")
        locker.close()

        def claimed() -> int:
            return db.session.scalar(
                select(func.count()).where(Message.state == MessageState.SENDING)
            )

        assert run_tick(app).recovered == 0 and claimed() == 2  # back, but not for a lease yet
        monotonic.advance(19)
        assert run_tick(app).recovered == 0 and claimed() == 2
        monotonic.advance(1)  # a whole lease connected, and the heartbeat is still 25 s old
        assert run_tick(app).recovered == 2 and claimed() == 0
