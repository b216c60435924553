"""``/readyz``: can this process reach its database, Redis and SMTP relay right now?

The three checks run at once, each in its own thread with ``READY_TIMEOUT``; a check still
hanging from the last round (a blackholed host) is waited for, not started again. The answer
is reused for ``READY_CACHE_SECONDS``, so a storm of probes costs the relay one connection
every few seconds per process. Errors are named briefly (``connection refused``, ``timed out``)
without hosts or credentials: the endpoint answers anyone.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import text

from nurture import runtime
from nurture.core.delivery.smtp import SmtpSettings, probe
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.tasks.monitoring import ping

COMPONENTS = ("database", "redis", "smtp")


@dataclass(frozen=True)
class Check:
    """One component's answer."""

    ok: bool
    ms: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The check as /readyz shows it."""
        shown: dict[str, Any] = {"ok": self.ok, "ms": round(self.ms, 1)}
        if self.error:
            shown["error"] = self.error
        return shown


@dataclass(frozen=True)
class Report:
    """Every component's answer at ``checked_at``."""

    checks: dict[str, Check]
    checked_at: datetime

    @property
    def ready(self) -> bool:
        """True when every component answered."""
        return all(check.ok for check in self.checks.values())

    @property
    def failing(self) -> list[str]:
        """The components that did not answer, in a fixed order."""
        return [name for name in COMPONENTS if not self.checks[name].ok]

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of /readyz (a 503's names what is not reachable, as API errors do)."""
        body: dict[str, Any] = {
            "status": "ready" if self.ready else "unavailable",
            "checks": {name: check.as_dict() for name, check in self.checks.items()},
            "checked_at": self.checked_at.isoformat(),
        }
        if not self.ready:
            body["failing"] = self.failing
            body["error"] = {
                "code": "not_ready",
                "message": f"not reachable: {', '.join(self.failing)}",
                "fields": {name: self.checks[name].error for name in self.failing},
            }
        return body


class _Probe:
    """A check running in a daemon thread: a hung connection never holds up the process."""

    def __init__(self, check: Callable[[], None]) -> None:
        self.done = threading.Event()
        self.result: Check | None = None
        self._check = check
        threading.Thread(target=self._run, name="readyz", daemon=True).start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._check()
            self.result = Check(True, (time.perf_counter() - started) * 1000)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            self.result = Check(False, (time.perf_counter() - started) * 1000, describe(exc))
        self.done.set()


class Readiness:
    """The checks of one app, cached; one per process (see :func:`readiness`)."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        self.timeout = float(config["READY_TIMEOUT"])
        self.ttl = float(config["READY_CACHE_SECONDS"])
        self.clock = runtime.clock(app)
        self._checks = {
            "database": _database_check(app),
            "redis": lambda: ping(config["REDIS_URL"], self.timeout),
            "smtp": _smtp_check(config["SMTP_URL"], self.timeout),
        }
        self._lock = threading.Lock()
        self._running: dict[str, _Probe] = {}
        self._cached: tuple[float, Report] | None = None

    def report(self) -> Report:
        """The last answer if it is fresh, else a new round of checks."""
        with self._lock:  # concurrent probes wait for one round instead of each starting one
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
                return self._cached[1]
            report = self._round()
            self._cached = (time.monotonic(), report)
            return report

    def _round(self) -> Report:
        for name, check in self._checks.items():
            running = self._running.get(name)
            if running is None or running.done.is_set():
                self._running[name] = _Probe(check)
        deadline = time.monotonic() + self.timeout
        checks = {}
        for name in COMPONENTS:
            probe_ = self._running[name]
            probe_.done.wait(max(deadline - time.monotonic(), 0))
            if probe_.done.is_set() and probe_.result is not None:
                checks[name] = probe_.result
            else:
                checks[name] = Check(False, self.timeout * 1000, "timed out")
        return Report(checks, self.clock.now())


def readiness(app: Flask) -> Readiness:
    """The process's readiness checks for ``app``, made on first use."""
    found = app.extensions.get("nurture.readiness")
    if found is None:
        found = app.extensions["nurture.readiness"] = Readiness(app)
    return found


def _database_check(app: Flask) -> Callable[[], None]:
    with app.app_context():
        engine = db.engine

    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return check


def _smtp_check(url: str, timeout: float) -> Callable[[], None]:
    try:
        settings = SmtpSettings.from_url(url, timeout)
    except ValidationError:
        settings = None

    def check() -> None:
        if settings is None:
            raise ValueError("NURTURE_SMTP_URL is not a valid smtp:// URL")
        probe(settings, timeout)

    return check


def describe(exc: BaseException) -> str:
    """A failure in a few words, without the host, port or credentials behind it."""
    if isinstance(exc, ValueError) and "NURTURE_" in str(exc):
        return str(exc)
    text_ = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the relay answered {exc.smtp_code}"
    # smtplib reports a greeting that never came as a disconnection "…: timed out".
    if isinstance(exc, smtplib.SMTPServerDisconnected) and "timed out" not in text_:
        return "the relay closed the connection"
    for needle, said in (
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("refused", "connection refused"),
        ("reset by peer", "connection reset"),
        ("no route", "no route to host"),
        ("name or service not known", "host not found"),
        ("could not translate host", "host not found"),
        ("temporary failure in name resolution", "host not found"),
        ("password authentication failed", "authentication failed"),
        ("authentication", "authentication failed"),
        ("does not exist", "database does not exist"),
        ("certificate", "TLS certificate rejected"),
        ("ssl", "TLS failed"),
    ):
        if needle in text_:
            return said
    return type(exc).__name__
