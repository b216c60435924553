"""What the operations tests share: the environment nurture's processes get, and those processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from nurture.runtime import FileClock
from tests.support.paths import ROOT
from tests.web.admin.conftest import live_app, live_server, page  # noqa: F401 - browser fixtures

BIN = Path(sys.executable).parent


def process_env(app: Flask, clock: FileClock, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment an operator gives nurture's processes, pointing at ``app``'s services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NURTURE_", "PROMETHEUS_"))}
    config = app.config
    env.update(
        {
            "NURTURE_DATABASE_URL": config["DATABASE_URL"],
            "NURTURE_REDIS_URL": config["REDIS_URL"],
            "NURTURE_SMTP_URL": config["SMTP_URL"],
            "NURTURE_SECRET_KEY": config["SECRET_KEY"],
            "NURTURE_ATS_SECRET": config["ATS_SECRET"],
            "NURTURE_BASE_URL": config["BASE_URL"],
            "NURTURE_CLOCK": str(clock.path),
            "NURTURE_INSTANCE_PATH": str(tmp_path / "instance"),
            "NURTURE_SENDER_EMAIL": config["SENDER_EMAIL"],
            "NURTURE_COMPANY_NAME": config["COMPANY_NAME"],
            "NURTURE_POSTAL_ADDRESS": config["POSTAL_ADDRESS"],
            "NURTURE_LOG_FORMAT": "json",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
    )
    env.update(extra)
    return env


class Process:
    """A nurture process started as an operator would, its output kept in a log file."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        *,
        shell: bool = False,
        cwd: Path = ROOT,
    ) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                args if not shell else args[0],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                shell=shell,
                start_new_session=True,  # its children (gunicorn's workers) stop with it
            )

    @property
    def output(self) -> str:
        """What it wrote so far."""
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        """True while it runs."""
        return self.process.poll() is None

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll ``ready`` (a real process: there is no clock to move) until it holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            assert self.alive(), f"{what}: the process exited:\n{self.output[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it and whatever it started."""
        if self.alive():
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
        try:
            # A whole system stops in a few seconds; a machine busy with parallel tests may
            # need several times that.
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def worker(env: dict[str, str], log: Path) -> Process:
    """``python worker.py``."""
    return Process([sys.executable, str(ROOT / "worker.py")], env, log)
