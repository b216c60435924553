"""``nurture up``: the whole system in one process tree, for a laptop or a demo.

The supervisor migrates the database, seeds demo data, starts an embedded Redis and a local
SMTP capture (unless ``NURTURE_REDIS_URL`` / ``NURTURE_SMTP_URL`` point elsewhere), then runs the
web app, a worker and the scheduler as child processes, and stops all of it on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from nurture.config import INSTANCE_DIR
from nurture.dev.embedded import EmbeddedRedis, SmtpCapture


class System:
    """The supervisor of ``nurture up``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5000, demo: bool = True) -> None:
        self.host, self.port, self.demo = host, port, demo
        self.instance = INSTANCE_DIR
        self.children: list[subprocess.Popen[bytes]] = []
        self.redis: EmbeddedRedis | None = None
        self.smtp: SmtpCapture | None = None

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
        click.echo(f"  starting {name}")
        self.children.append(subprocess.Popen(args, env=env))

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
                for child in self.children:
                    if child.poll() is not None:
                        raise click.ClickException(
                            f"{' '.join(child.args[2:4])} exited with {child.returncode}"
                        )
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the children, then Redis and the SMTP capture."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if self.redis is not None:
            self.redis.stop()
        if self.smtp is not None:
            self.smtp.stop()
        click.echo("nurture stopped.")
