"""/healthz and /readyz: unauthenticated, cheap, and honest about what is down."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from nurture import create_app
from nurture.config import TestConfig
from nurture.dev.embedded import EmbeddedRedis, SmtpCapture, free_port
from nurture.extensions import db
from nurture.web.ops.readiness import describe
from tests.conftest import require, running_app
from tests.support import postgres as pg


def readyz(app):
    """GET /readyz and its JSON."""
    answer = app.test_client().get("/readyz")
    return answer.status_code, answer.get_json(), answer.get_data(as_text=True)


def test_healthz_answers_without_touching_the_database(clock) -> None:
    # Nothing listens where the database should be: the process is alive, and says so.
    app = create_app(
        TestConfig,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nurture",
        CLOCK=str(clock.path),
        INSTANCE_PATH=str(clock.path.parent / "instance"),
    )
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"
    assert readyz(app)[1]["checks"]["database"]["ok"] is False
    with app.app_context():
        db.engine.dispose()


def test_readyz_is_ready_when_database_redis_and_relay_answer(
    database_url, clock, redis_url, smtp
) -> None:
    with running_app(database_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url) as app:
        status, body, _ = readyz(app)
    assert status == 200, body
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "smtp": True,
    }
    assert "error" not in body and "failing" not in body
    # A readiness probe is no send: nothing reached the mailbox.
    assert smtp.messages == []


@pytest.mark.parametrize("component", ["database", "redis", "smtp"])
def test_readyz_names_the_component_whose_server_stopped(
    component, clock, redis_url, smtp, tmp_path: Path
) -> None:
    """Each server really runs, then really stops: /readyz turns 503 and names it alone."""
    server: object
    settings = {"REDIS_URL": redis_url, "SMTP_URL": smtp.url, "READY_CACHE_SECONDS": 0}
    database_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    if component == "database":
        require(pg.available(), "PostgreSQL server binaries")
        server = pg.PostgresCluster()
        database_url = server.start()
    elif component == "redis":
        server = EmbeddedRedis(tmp_path / "redis")
        settings["REDIS_URL"] = server.start()
    else:
        server = SmtpCapture()
        server.start()
        settings["SMTP_URL"] = server.url
    try:
        with running_app(database_url, clock, **settings) as app:
            assert readyz(app)[0] == 200
            port = server.port
            server.stop()
            status, body, text = readyz(app)
    finally:
        server.stop()
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["failing"] == [component]
    assert body["checks"][component]["ok"] is False
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["fields"] == {component: "connection refused"}
    assert component in body["error"]["message"]
    # Unauthenticated: it names the problem, never where the server is.
    assert "127.0.0.1" not in text and str(port) not in text


class _CountingRelay:
    """A real SMTP server (aiosmtpd) that counts the greetings it gets."""

    def __init__(self) -> None:
        self.greetings = 0
        self._lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        with self._lock:
            self.greetings += 1
        session.host_name = hostname
        return responses


def test_a_storm_of_probes_costs_the_relay_one_connection(sqlite_url, clock, redis_url) -> None:
    relay = _CountingRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    stopped = False
    try:
        with running_app(
            sqlite_url,
            clock,
            REDIS_URL=redis_url,
            SMTP_URL=f"smtp://127.0.0.1:{controller.port}",
            READY_CACHE_SECONDS=60,
        ) as app:
            answers: list[int] = []

            def probe() -> None:
                answers.append(app.test_client().get("/readyz").status_code)

            storm = [threading.Thread(target=probe) for _ in range(40)]
            for thread in storm:
                thread.start()
            for thread in storm:
                thread.join()
            assert answers == [200] * 40
            assert relay.greetings == 1
            controller.stop()
            stopped = True
            # Within the cache's few seconds the answer stands though the relay went away.
            assert readyz(app)[0] == 200
    finally:
        if not stopped:
            controller.stop()


def test_a_relay_that_never_answers_is_reported_within_the_timeout(
    sqlite_url, clock, redis_url
) -> None:
    # It listens (the connection is made) but never greets: a hung relay, not a closed port.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with running_app(
            sqlite_url,
            clock,
            REDIS_URL=redis_url,
            SMTP_URL=f"smtp://127.0.0.1:{silent.getsockname()[1]}",
            READY_TIMEOUT=0.5,
            READY_CACHE_SECONDS=0,
        ) as app:
            started = time.monotonic()
            status, body, _ = readyz(app)
            took = time.monotonic() - started
            # The next probe waits for the hung check instead of opening another connection.
            status_again, body_again, _ = readyz(app)
    finally:
        silent.close()
    assert status == 503 and body["failing"] == ["smtp"]
    assert body["error"]["fields"]["smtp"] == "timed out"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert took < 3.0
    assert status_again == 503 and body_again["failing"] == ["smtp"]


def test_readyz_and_healthz_need_no_login_and_are_json(app) -> None:
    for path in ("/healthz", "/readyz"):
        answer = app.test_client().get(path)
        assert answer.content_type == "application/json"
        json.loads(answer.get_data(as_text=True))


@pytest.mark.parametrize(
    ("error", "said"),
    [
        # smtplib turns a greeting that never came into a "disconnection": still a timeout.
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed: timed out"), "timed out"),
        (
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            "the relay closed the connection",
        ),
        (smtplib.SMTPResponseException(421, b"busy"), "the relay answered 421"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (
            OSError("Error 111 connecting to 10.1.2.3:6379. Connection refused."),
            "connection refused",
        ),
        (TimeoutError("timed out"), "timed out"),
        (RuntimeError("password authentication failed for user nurture"), "authentication failed"),
    ],
)
def test_failures_are_named_without_hosts_or_credentials(error, said) -> None:
    assert describe(error) == said
