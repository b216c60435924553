"""``nurture up``: the whole system in one process tree, for a laptop or a demo.

The supervisor migrates the database, seeds demo data, starts an embedded Redis and a local
SMTP capture (unless ``NURTURE_REDIS_URL`` / ``NURTURE_SMTP_URL`` point elsewhere), then runs the
web app, a worker and the scheduler as child processes. A child that dies is started again
after a backoff (1 s, doubling to 30 s while it keeps dying young), and so is the embedded
Redis, on its port; each restart is logged. Only Ctrl-C or SIGTERM stops the system.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from nurture.config import INSTANCE_DIR
from nurture.dev.embedded import EmbeddedRedis, SmtpCapture

# Restart backoff: the first wait, the longest, and how long a child must have run for its
# death to count as a fresh failure (the backoff starting over) rather than another in a row.
RESTART_FIRST = 1.0
RESTART_CAP = 30.0
RAN_WELL = 30.0


@dataclass
class Child:
    """One supervised process: how to start it, and its restart history."""

    name: str
    args: list[str]
    popen: subprocess.Popen[bytes] | None = None
    started: float = 0.0  # monotonic
    failures: int = 0  # deaths in a row, each after running less than RAN_WELL
    restarts: int = 0
    due: float | None = None  # when (monotonic) to start it again
    history: list[int] = field(default_factory=list)  # exit statuses, oldest first

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.popen is not None and self.popen.poll() is None


def describe(status: int) -> str:
    """An exit status as an operator reads it: "status 1", or "SIGKILL"."""
    if status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            return f"signal {-status}"
    return f"status {status}"


def backoff(failures: int) -> float:
    """Seconds before the next start after ``failures`` young deaths in a row."""
    return min(RESTART_FIRST * 2 ** max(failures - 1, 0), RESTART_CAP)


class System:
    """The supervisor of ``nurture up``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5000, demo: bool = True) -> None:
        self.host, self.port, self.demo = host, port, demo
        self.instance = INSTANCE_DIR
        self.children: list[Child] = []
        self.redis: EmbeddedRedis | None = None
        self.smtp: SmtpCapture | None = None
        self._redis_due = 0.0  # monotonic: not before then, after a failed restart

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("NURTURE_BASE_URL", f"http://{self.host}:{self.port}")
        env["NURTURE_INSTANCE_PATH"] = str(self.instance)
        # Web, worker and scheduler count into one directory, so /metrics shows all of them.
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(self.instance / "metrics"))
        if self.redis is not None:
            env["NURTURE_REDIS_URL"] = self.redis.url
        if self.smtp is not None:
            env["NURTURE_SMTP_URL"] = self.smtp.url
            env["NURTURE_MAILBOX_DIR"] = str(self.instance / "mailbox")
        return env

    def _nurture(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "nurture.cli", *args]

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        child = Child(name, args)
        self.children.append(child)
        self._start(child, env)

    def _start(self, child: Child, env: dict[str, str]) -> None:
        child.popen = subprocess.Popen(child.args, env=env)
        child.started, child.due = time.monotonic(), None
        pid = child.popen.pid
        if child.restarts:
            click.echo(f"  restarted {child.name} (pid {pid}, restart {child.restarts})")
        else:
            click.echo(f"  starting {child.name} (pid {pid})")

    def supervise(self, env: dict[str, str]) -> None:
        """One round: note children that died, start those whose backoff is over."""
        now = time.monotonic()
        if self.redis is not None and not self.redis.running and now >= self._redis_due:
            click.echo("  embedded Redis exited; starting it again on its port", err=True)
            try:
                self.redis.restart()
            except RuntimeError as exc:
                self._redis_due = now + RESTART_CAP
                click.echo(f"  embedded Redis did not start ({exc}); trying again later", err=True)
        for child in self.children:
            if child.due is None and child.popen is not None and child.popen.poll() is not None:
                status = child.popen.returncode
                ran = now - child.started
                child.history.append(status)
                child.failures = child.failures + 1 if ran < RAN_WELL else 1
                wait = backoff(child.failures)
                child.due = now + wait
                click.echo(
                    f"  {child.name} exited with {describe(status)} after {ran:.0f} s; "
                    f"restarting in {wait:.0f} s",
                    err=True,
                )
            if child.due is not None and now >= child.due:
                child.restarts += 1
                self._start(child, env)

    def run(self) -> None:
        """Start everything, print where to look, and wait for Ctrl-C."""
        if not os.environ.get("NURTURE_SECRET_KEY"):
            raise click.ClickException(
                "NURTURE_SECRET_KEY is not set (make run creates one in instance/secret_key)"
            )
        self.instance.mkdir(parents=True, exist_ok=True)
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Counters of an earlier run are not this run's: start from zero.
            shutil.rmtree(self.instance / "metrics", ignore_errors=True)
        if not os.environ.get("NURTURE_REDIS_URL"):
            self.redis = EmbeddedRedis(self.instance / "redis")
            click.echo(f"  embedded Redis on {self.redis.start()}")
        if not os.environ.get("NURTURE_SMTP_URL"):
            self.smtp = SmtpCapture(self.instance / "mailbox")
            click.echo(f"  SMTP capture on {self.smtp.start()} -> {self.instance / 'mailbox'}")
        env = self._env()
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        try:
            subprocess.run(self._nurture("db", "upgrade"), env=env, check=True)
            if self.demo:
                subprocess.run(self._nurture("demo"), env=env, check=True)
            self._spawn(
                "web", self._nurture("web", "--host", self.host, "--port", str(self.port)), env
            )
            self._spawn(
                "worker",
                [sys.executable, str(Path(__file__).parent.parent / "worker.py")]
                if (Path(__file__).parent.parent / "worker.py").exists()
                else self._nurture("worker"),
                env,
            )
            self._spawn("scheduler", self._nurture("scheduler"), env)
            click.echo("")
            click.secho(f"nurture is up: {env['NURTURE_BASE_URL']}/admin/", bold=True)
            credentials = self.instance / "demo-admin.txt"
            if credentials.exists():
                click.echo(credentials.read_text().strip())
            if self.smtp is not None:
                click.echo(f"captured mail: {env['NURTURE_BASE_URL']}/admin/mailbox")
            click.echo("Ctrl-C stops everything.")
            while not stopping:
                self.supervise(env)
                time.sleep(0.25)
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the children, then Redis and the SMTP capture."""
        running = [c.popen for c in self.children if c.popen is not None and c.alive]
        for popen in running:
            popen.send_signal(signal.SIGTERM)
        for popen in running:
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
        if self.redis is not None:
            self.redis.stop()
        if self.smtp is not None:
            self.smtp.stop()
        click.echo("nurture stopped.")
