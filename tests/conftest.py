"""Shared fixtures: the app on a fresh database, a real Redis, a real SMTP server, a clock."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade

from nurture import create_app
from nurture.config import TestConfig
from nurture.core.accounts.users import create_token, create_user
from nurture.dev.embedded import EmbeddedRedis, SmtpCapture
from nurture.extensions import db
from nurture.runtime import FileClock
from nurture.tasks.sending import close_sender
from tests.support import postgres as pg

IN_CI = os.environ.get("CI", "").lower() == "true"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
ATS_SECRET = TestConfig.ATS_SECRET


def require(condition: bool, what: str) -> None:
    """Skip a test whose component is missing, except in CI, where that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing; CI must provide it")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server process for the whole session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session's Redis, emptied for each test."""
    from redis import Redis

    with Redis.from_url(redis_server.url) as conn:
        conn.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpCapture]:
    """A real aiosmtpd server on 127.0.0.1 for the whole session."""
    server = SmtpCapture()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SmtpCapture) -> SmtpCapture:
    """The session's SMTP server with no mail in it."""
    smtp_server.clear()
    return smtp_server


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[pg.PostgresCluster | None]:
    """A throw-away PostgreSQL cluster, started on first use."""
    if not pg.available():
        yield None
        return
    cluster = pg.PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nurture.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    require(cluster is not None, "PostgreSQL server binaries")
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'nurture.db'}"


@pytest.fixture
def clock(tmp_path: Path) -> FileClock:
    """A clock the test moves by hand, readable by worker processes too."""
    clock = FileClock(tmp_path / "clock")
    clock.set(START)
    return clock


@contextlib.contextmanager
def running_app(database_url: str, clock: FileClock, **overrides: Any) -> Iterator[Flask]:
    """``make_app`` inside its app context, with the SMTP connection and pool closed after."""
    app = make_app(database_url, clock, **overrides)
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def make_app(database_url: str, clock: FileClock, **overrides: Any) -> Flask:
    """An app on ``database_url``, migrated with Alembic as an operator would."""
    overrides.setdefault("INSTANCE_PATH", str(clock.path.parent / "instance"))
    app = create_app(TestConfig, DATABASE_URL=database_url, CLOCK=str(clock.path), **overrides)
    with app.app_context():
        upgrade()
    return app


@pytest.fixture
def app(sqlite_url: str, clock: FileClock, tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh SQLite database (Redis and SMTP point nowhere unless asked)."""
    with running_app(
        sqlite_url, clock, REDIS_URL="redis://127.0.0.1:1/0", SMTP_URL="smtp://127.0.0.1:1"
    ) as app:
        yield app


@pytest.fixture
def client(app: Flask):
    """A test client of ``app``."""
    return app.test_client()


_users = itertools.count(1)


def api_token(app: Flask, role: str = "admin") -> str:
    """A bearer token of a new user with ``role``."""
    with app.app_context():
        now = app.extensions["nurture.clock"].now()
        user = create_user(
            db.session, f"user{next(_users)}@example.com", "correct horse battery", role, now
        )
        token = create_token(db.session, user, "tests", now)
        db.session.commit()
    return token


def auth_headers(app: Flask, role: str = "admin") -> dict[str, str]:
    """Authorization headers of a new API caller with ``role``."""
    return {"Authorization": f"Bearer {api_token(app, role)}"}


@pytest.fixture
def auth(app: Flask) -> dict[str, str]:
    """Headers of an admin API caller."""
    return auth_headers(app, "admin")


def ats_post(client, payload: dict[str, Any], secret: str | None = ATS_SECRET):
    """POST a signed ATS event, as the ATS would."""
    body = json.dumps(payload).encode()
    signature = hmac.new((secret or "").encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        "/api/v1/ats/events",
        data=body,
        content_type="application/json",
        headers={"X-Nurture-Signature": f"sha256={signature}"},
    )


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    """Debian's Chromium (or NURTURE_CHROMIUM), which Playwright drives."""
    for candidate in (
        os.environ.get("NURTURE_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    executable = chromium_path()
    require(executable is not None, "Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
