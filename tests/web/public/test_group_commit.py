"""Group commit of tracking hits: many threads, one transaction, every answered hit stored.

The hits go over real HTTP to a threaded WSGI server in this process (each request on its own
thread, no app context, as under gunicorn's gthread workers), on SQLite and on PostgreSQL. The
outage tests cut a real PostgreSQL off (connections refused, sessions killed) and restart it.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text
from werkzeug.serving import make_server

from nurture.core.audience import engagement
from nurture.core.feedback.tracking import Hit, record_event, record_hits
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Event, EventKind, Message, Step
from nurture.runtime import FileClock
from nurture.web.public.committer import GroupCommitter, Outcome
from nurture.web.public.hits import TrackingHits
from tests.conftest import make_app, require
from tests.support import postgres as pg

PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML)"
SCANNER = "Barracuda Sentinel (EE)"
TARGET = "https://careers.example.com/jobs/7?ref=mail"
_AGENTS = itertools.count()  # every hit of every test its own user agent


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for something another thread does (a condition, not a fixed delay)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        pause.wait(0.002)


def sent_messages(count: int, sent_at: datetime) -> list[Message]:
    """``count`` candidates, each with one message sent at ``sent_at``."""
    campaign = Campaign(name="Silver medalists", created_at=sent_at, updated_at=sent_at)
    db.session.add(campaign)
    db.session.flush()
    step = Step(campaign_id=campaign.id, position=0)
    db.session.add(step)
    people = [
        Candidate(email=f"c{i}@example.org", created_at=sent_at, updated_at=sent_at)
        for i in range(count)
    ]
    db.session.add_all(people)
    db.session.flush()
    messages = [
        Message(candidate_id=person.id, campaign_id=campaign.id, step_id=step.id, state="sent",
                queued_at=sent_at, sent_at=sent_at)
        for person in people
    ]  # fmt: skip
    db.session.add_all(messages)
    db.session.commit()
    return messages


@contextmanager
def serving(app: Flask) -> Iterator[int]:
    """``app`` on a threaded HTTP server on 127.0.0.1 (a thread per request); its port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def get(port: int, path: str, user_agent: str) -> tuple[int, dict[str, str]]:
    """One GET over a new connection: status and headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"User-Agent": user_agent})
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        conn.close()


def close(app: Flask) -> None:
    """Stop the app's committer (and its connection) and its pool, before its database goes."""
    hits = app.wsgi_app
    assert isinstance(hits, TrackingHits)
    hits.close()
    db.session.remove()
    db.engine.dispose()


def committer_of(app: Flask) -> GroupCommitter:
    """The committer behind the app's /o/ and /c/ paths."""
    hits = app.wsgi_app
    assert isinstance(hits, TrackingHits)
    return hits.committer


def hammer(port: int, jobs: list[tuple[str, str, str | None]], threads: int) -> list[dict]:
    """Send ``jobs`` (path, user agent, expected Location) from ``threads`` threads at once."""
    answers: list[dict] = []
    work = iter(jobs)
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def client() -> None:
        start.wait()
        while True:
            with lock:
                job = next(work, None)
            if job is None:
                return
            path, agent, target = job
            status, headers = get(port, path, agent)
            answers.append({"path": path, "agent": agent, "target": target, "status": status,
                            "headers": headers})  # fmt: skip

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    assert len(answers) == len(jobs)
    return answers


def acknowledged(answer: dict) -> bool:
    """An answer that says its hit is stored: the pixel or the right redirect, unmarked."""
    if answer["headers"].get("X-Nurture-Recorded") == "no":
        return False
    if answer["target"] is None:
        return answer["status"] == 200 and answer["headers"]["Content-Type"] == "image/gif"
    return answer["status"] == 302 and answer["headers"]["Location"] == answer["target"]


def stored_agents() -> Counter:
    """How many events each user agent left (every job below has its own agent)."""
    rows = db.session.execute(select(Event.user_agent, Event.machine)).all()
    db.session.rollback()
    return Counter(agent for agent, _ in rows)


@pytest.fixture
def app_on(database_url: str, clock: FileClock) -> Iterator[Flask]:
    """The app on SQLite and on PostgreSQL, in an app context for the test's own queries."""
    app = make_app(database_url, clock)
    with app.app_context():
        yield app
        close(app)


def jobs_for(tokens: Tokens, messages: list[Message] | list[int], rounds: int
             ) -> list[tuple[str, str, Any]]:  # fmt: skip
    """Opens and clicks of every message, a person's or a scanner's, each agent unique."""
    jobs, seq = [], _AGENTS
    ids = [m if isinstance(m, int) else m.id for m in messages]
    for _ in range(rounds):
        for index, message_id in enumerate(ids):
            agent = f"{SCANNER if index % 5 == 0 else PHONE} #{next(seq)}"
            open_path = tokens.open_url(message_id).removeprefix(tokens.base_url)
            jobs.append((open_path, agent, None))
            click_path = tokens.click_url(message_id, TARGET).removeprefix(tokens.base_url)
            jobs.append((click_path, f"{agent} click", TARGET))
    return jobs


# --- many threads, one process ------------------------------------------------------------


def test_concurrent_hits_are_all_stored_in_fewer_transactions(app_on: Flask, clock) -> None:
    """400 hits from 16 threads: each answered hit is an event, machines marked, summary right."""
    now = clock.now()
    messages = sent_messages(20, now - timedelta(days=1))
    tokens = Tokens.from_config(app_on.config)
    jobs = jobs_for(tokens, messages, rounds=10)

    with serving(app_on) as port:
        answers = hammer(port, jobs, threads=16)

    assert all(acknowledged(answer) for answer in answers)
    stored = db.session.execute(select(Event.user_agent, Event.machine, Event.kind)).all()
    assert sorted(agent for agent, _, _ in stored) == sorted(agent for _, agent, _ in jobs)
    assert all(machine == agent.startswith(SCANNER) for agent, machine, _ in stored)
    assert Counter(kind for _, _, kind in stored) == {"open": 200, "click": 200}
    # Grouped: fewer transactions than hits (16 threads waiting at once share them).
    assert committer_of(app_on).batches < len(jobs)

    # The summary the batches kept is the one a rebuild from the events gives.
    people = {c.id: c for c in db.session.scalars(select(Candidate))}
    kept = {cid: (c.last_opened_at, c.last_clicked_at, c.engagement_points)
            for cid, c in people.items()}  # fmt: skip
    engagement.rebuild_points(db.session)
    engagement.rebuild_summary(db.session)
    db.session.commit()
    db.session.expire_all()
    for cid, candidate in people.items():
        opened, clicked, points = kept[cid]
        assert (candidate.last_opened_at, candidate.last_clicked_at) == (opened, clicked)
        assert candidate.engagement_points == pytest.approx(points, rel=1e-9)
    scanned = [m.candidate_id for i, m in enumerate(messages) if i % 5 == 0]
    assert all(people[cid].engagement_points == 0 for cid in scanned)
    assert all(people[cid].last_opened_at == now for cid in people if cid not in scanned)


def test_a_batch_stores_what_one_hit_at_a_time_stores(app_on: Flask, clock) -> None:
    """record_hits on a batch and record_event hit by hit: the same rows, the same summary."""
    now = clock.now()
    messages = sent_messages(8, now - timedelta(seconds=60))
    agents = [PHONE, "", "Mozilla/5.0", "GoogleImageProxy", SCANNER, PHONE]
    hits = [
        Hit(EventKind.OPEN if i % 3 else EventKind.CLICK, messages[i % 4].id,
            now + timedelta(seconds=(i * 37) % 300 - 55), agents[i % len(agents)],
            TARGET if i % 3 == 0 else "")
        for i in range(40)
    ]  # fmt: skip
    twin = {m.id: messages[4 + i] for i, m in enumerate(messages[:4])}  # same sent_at

    human = record_hits(db.session, hits)
    one_by_one = [
        record_event(db.session, twin[hit.message_id], hit.kind, hit.at, hit.url, hit.user_agent)
        for hit in hits
    ]
    db.session.commit()

    assert human == one_by_one
    assert len(set(human)) == 2  # some hits machine, some human: the comparison means something
    events = db.session.scalars(select(Event).order_by(Event.id)).all()
    batch, single = events[:40], events[40:]
    assert [(e.kind, e.machine, e.url, e.user_agent, e.created_at) for e in batch] == [
        (e.kind, e.machine, e.url, e.user_agent, e.created_at) for e in single
    ]
    db.session.expire_all()
    for message in messages[:4]:
        a = db.session.get(Candidate, message.candidate_id)
        b = db.session.get(Candidate, twin[message.id].candidate_id)
        assert (a.last_opened_at, a.last_clicked_at) == (b.last_opened_at, b.last_clicked_at)
        assert a.engagement_points == pytest.approx(b.engagement_points, rel=1e-9)


def test_an_unknown_message_in_a_batch_is_a_404_and_the_others_are_stored(
    app_on: Flask, clock
) -> None:
    """A signed token for a message that is gone changes nothing; its batch is unharmed."""
    messages = sent_messages(2, clock.now() - timedelta(days=1))
    tokens = Tokens.from_config(app_on.config)
    gone = tokens.open_url(messages[-1].id + 1000).removeprefix(tokens.base_url)
    jobs = jobs_for(tokens, messages, rounds=5) + [
        (gone, f"{PHONE} gone {i}", None) for i in range(5)
    ]

    with serving(app_on) as port:
        answers = hammer(port, jobs, threads=8)

    assert [a["status"] for a in answers if a["path"] == gone] == [404] * 5
    assert all(acknowledged(a) for a in answers if a["path"] != gone)
    assert sum(stored_agents().values()) == len(jobs) - 5


def test_each_answer_waits_for_the_commit_of_its_hit(app_on: Flask, clock) -> None:
    """While a transaction is open nobody's hit in it is answered; the hits that queued
    meanwhile go together in the next one."""
    messages = sent_messages(1, clock.now() - timedelta(days=1))
    inside, release, batches = threading.Event(), threading.Event(), []

    def slow(session, hits):  # the first transaction stays open until the test lets it go
        batches.append(len(hits))
        outcome = record_hits(session, hits)
        if len(batches) == 1:
            inside.set()
            assert release.wait(30)
        return outcome

    committer = GroupCommitter(db.engine, timeout=30, recorder=slow)
    hit = Hit(EventKind.OPEN, messages[0].id, clock.now(), PHONE)
    outcomes: list[Outcome] = []
    threads = [threading.Thread(target=lambda: outcomes.append(committer.record(hit)))
               for _ in range(9)]  # fmt: skip
    threads[0].start()
    assert inside.wait(30)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: committer._queue.qsize() == 8)

    assert outcomes == []  # the first hit's INSERT is done, its COMMIT is not: no answer yet
    release.set()
    for thread in threads:
        thread.join(30)
    assert outcomes == [Outcome.HUMAN] * 9
    assert batches == [1, 8]
    committer.close()
    db.session.rollback()
    assert db.session.scalar(select(text("count(*)")).select_from(Event)) == 9


# --- the database away --------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[pg.PostgresCluster]:
    """A cluster of this test's own, to cut off and restart."""
    require(pg.available(), "PostgreSQL server binaries")
    with pg.PostgresCluster() as cluster:
        yield cluster


def admin(cluster: pg.PostgresCluster, sql: str) -> None:
    """Run ``sql`` as the superuser in the maintenance database."""
    import psycopg

    with psycopg.connect(
        f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(sql)


def cut_off(cluster: pg.PostgresCluster) -> None:
    """The database refuses new sessions and loses those it had: an outage, as the app sees it."""
    admin(cluster, "ALTER DATABASE nurture ALLOW_CONNECTIONS false")
    admin(cluster, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = 'nurture' AND pid <> pg_backend_pid()")  # fmt: skip


def reconnect(cluster: pg.PostgresCluster) -> None:
    """The outage is over."""
    admin(cluster, "ALTER DATABASE nurture ALLOW_CONNECTIONS true")


def test_an_outage_serves_pixel_and_redirect_unrecorded_and_loses_no_answered_hit(
    own_postgres: pg.PostgresCluster, clock: FileClock
) -> None:
    """Database away: the pixel and the redirect still go out, within the timeout, marked
    unrecorded; every hit answered as recorded before, during or after is in the database."""
    app = make_app(own_postgres.url, clock, TRACKING_COMMIT_TIMEOUT=0.5)
    with app.app_context():
        messages = [m.id for m in sent_messages(4, clock.now() - timedelta(days=1))]
        tokens = Tokens.from_config(app.config)
        pixel = tokens.open_url(messages[0]).removeprefix(tokens.base_url)
        link = tokens.click_url(messages[0], TARGET).removeprefix(tokens.base_url)
        db.session.remove()
        with serving(app) as port:
            assert acknowledged({**dict(zip(("status", "headers"), get(port, pixel, "before"),
                                            strict=True)), "target": None})  # fmt: skip

            cut_off(own_postgres)
            started = time.monotonic()
            status, headers = get(port, pixel, "during open")
            assert (status, headers["Content-Type"]) == (200, "image/gif")
            assert headers["X-Nurture-Recorded"] == "no"
            status, headers = get(port, link, "during click")
            assert (status, headers["Location"]) == (302, TARGET)  # the candidate gets there
            assert headers["X-Nurture-Recorded"] == "no"
            assert time.monotonic() - started < 2 * (0.5 + 0.5) + 1  # bounded by the timeout

            # Load across the end of the outage: answered-as-recorded hits are all stored.
            jobs = jobs_for(tokens, messages, rounds=15)
            restored = threading.Timer(0.3, reconnect, args=(own_postgres,))
            restored.start()
            answers = hammer(port, jobs, threads=8)
            restored.join()

            status, headers = get(port, pixel, "after")  # the committer lived through it
            assert status == 200 and "X-Nurture-Recorded" not in headers
        stored = stored_agents()
        assert stored["before"] == 1 and stored["after"] == 1
        assert stored["during open"] == 0 and stored["during click"] == 0
        answered = [a["agent"] for a in answers if acknowledged(a)]
        assert answered, "no hit was recorded after the outage"
        assert all(stored[agent] == 1 for agent in answered)
        close(app)


def test_the_committer_survives_a_database_restart(
    own_postgres: pg.PostgresCluster, clock: FileClock
) -> None:
    """PostgreSQL restarted under load: the hits in flight wait for it and are all recorded,
    and the same committer goes on recording after it."""
    app = make_app(own_postgres.url, clock)
    with app.app_context():
        messages = [m.id for m in sent_messages(4, clock.now() - timedelta(days=1))]
        tokens = Tokens.from_config(app.config)
        db.session.remove()
        with serving(app) as port:
            warm = hammer(port, jobs_for(tokens, messages, rounds=2), threads=4)
            assert all(acknowledged(a) for a in warm)
            committer = committer_of(app)

            jobs = jobs_for(tokens, messages, rounds=25)
            answers: list[dict] = []
            load = threading.Thread(target=lambda: answers.extend(hammer(port, jobs, 8)))
            load.start()
            wait_until(lambda: stored_agents().total() >= len(warm) + 20)
            # From this thread: the server dies with the thread that started it (PDEATHSIG).
            own_postgres.restart()
            load.join(120)

            after = hammer(port, jobs_for(tokens, messages[:1], rounds=5), threads=2)
            assert all(acknowledged(a) for a in after)
            assert committer_of(app) is committer
        stored = stored_agents()
        for answer in warm + answers + after:
            if acknowledged(answer):
                assert stored[answer["agent"]] == 1, answer
        assert all(a["status"] in (200, 302) for a in answers)  # the candidate never sees a 5xx
        # The committer retried through the restart (well under TRACKING_COMMIT_TIMEOUT): every
        # hit of the run was recorded, none merely served.
        assert [a for a in answers if not acknowledged(a)] == []
        close(app)


# --- the answers, served ahead of Flask -----------------------------------------------------


def test_head_records_like_get_and_sends_no_body(app_on: Flask, clock) -> None:
    """As Flask answered HEAD for a GET route: the same status and headers, no body."""
    message = sent_messages(1, clock.now() - timedelta(days=1))[0]
    tokens = Tokens.from_config(app_on.config)
    client = app_on.test_client()

    pixel = client.head(tokens.open_url(message.id).removeprefix(tokens.base_url))
    link = client.head(tokens.click_url(message.id, TARGET).removeprefix(tokens.base_url))

    assert (pixel.status_code, pixel.mimetype, pixel.data) == (200, "image/gif", b"")
    assert pixel.headers["Content-Length"] == "42"
    assert (link.status_code, link.location, link.data) == (302, TARGET, b"")
    assert [e.kind for e in db.session.scalars(select(Event).order_by(Event.id))] == [
        "open", "click"
    ]  # fmt: skip


def test_a_signed_link_no_header_can_carry_is_refused_and_an_iri_is_encoded(
    app_on: Flask, clock
) -> None:
    """A Location is never split: control characters are a 404; non-ASCII is percent-encoded."""
    message = sent_messages(1, clock.now() - timedelta(days=1))[0]
    tokens = Tokens.from_config(app_on.config)
    client = app_on.test_client()
    split = "https://careers.example.com/\r\nSet-Cookie: x=1"
    iri = "https://careers.example.com/jobs/zürich?q=é"

    refused = client.get(tokens.click_url(message.id, split).removeprefix(tokens.base_url))
    encoded = client.get(tokens.click_url(message.id, iri).removeprefix(tokens.base_url))

    assert refused.status_code == 404 and "Location" not in refused.headers
    assert encoded.status_code == 302
    assert encoded.headers["Location"] == "https://careers.example.com/jobs/z%C3%BCrich?q=%C3%A9"
    assert [e.url for e in db.session.scalars(select(Event))] == [iri]
