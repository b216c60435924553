"""The commands an operator types first: `nurture --help`, a missing secret, `make run PORT=`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from nurture.dev.embedded import free_port
from tests.web.ops.conftest import BIN, ROOT, Process

COMMANDS = {
    "db", "demo", "dkim", "import", "inbound", "routes", "run", "scheduler", "shell", "tokens",
    "up", "users", "web", "worker",
}  # fmt: skip


def bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A fresh machine's environment: no NURTURE_* settings at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NURTURE_", "PROMETHEUS_"))}
    return env | {"NURTURE_INSTANCE_PATH": str(tmp_path / "instance")} | extra


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_help_lists_every_command_without_a_secret(tmp_path: Path) -> None:
    answer = run([str(BIN / "nurture"), "--help"], bare_env(tmp_path))
    assert answer.returncode == 0, answer.stderr
    listed = {
        line.split()[0]
        for line in answer.stdout.split("Commands:")[1].splitlines()
        if line.startswith("  ") and line.split()
    }
    assert COMMANDS <= listed
    assert "Traceback" not in answer.stderr and "Error" not in answer.stderr
    # A group's own help works too, still without an app.
    users = run([str(BIN / "nurture"), "users", "--help"], bare_env(tmp_path))
    assert users.returncode == 0 and "create" in users.stdout


def test_a_missing_secret_is_explained_once_in_one_line(tmp_path: Path) -> None:
    env = bare_env(tmp_path)
    for args in (
        [str(BIN / "nurture"), "users", "create", "ops@example.com", "--password", "long enough!"],
        [str(BIN / "nurture"), "scheduler", "--once"],
        [str(BIN / "nurture"), "worker", "--burst"],
        [str(BIN / "nurture"), "db", "upgrade"],
        [str(BIN / "nurture"), "up"],
        [sys.executable, "worker.py", "--burst"],
    ):
        answer = run(args, env)
        assert answer.returncode != 0, args
        said = (answer.stdout + answer.stderr).strip().splitlines()
        assert len(said) == 1, f"{args}: {said}"
        assert "NURTURE_SECRET_KEY is not set" in said[0]
        assert "Traceback" not in said[0]


def test_nurture_port_chooses_the_port_of_nurture_web(tmp_path: Path) -> None:
    port = free_port()
    env = bare_env(tmp_path, NURTURE_SECRET_KEY="a-test-secret", NURTURE_PORT=str(port))
    env["NURTURE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'nurture.db'}"
    web = Process([str(BIN / "nurture"), "web"], env, tmp_path / "web.log")
    try:
        web.wait_for(lambda: _answers(port), f"nurture web on port {port}")
        assert json.loads(get(port, "/healthz")[1]) == {"status": "ok"}
    finally:
        web.stop()


def _answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_make_run_port_serves_the_whole_system_on_that_port(tmp_path: Path) -> None:
    port = free_port()
    env = bare_env(tmp_path, NURTURE_SCHEDULER_INTERVAL="1")
    system = Process(
        ["make", "--no-print-directory", "run", f"PORT={port}"], env, tmp_path / "up.log"
    )
    try:
        system.wait_for(lambda: "nurture is up" in system.output, "make run", timeout=120)
        assert f"http://127.0.0.1:{port}/admin/" in system.output
        system.wait_for(lambda: _answers(port), f"the web app on port {port}")
        # Everything `make run` started is reachable: database, embedded Redis, SMTP capture.
        status, body = get(port, "/readyz")
        assert status == 200, body
        # The secrets it made live in the instance directory it was given, not the checkout's.
        assert (tmp_path / "instance" / "secret_key").exists()
    finally:
        system.stop(signal.SIGINT)  # Ctrl-C, as a person stops it
    assert "nurture stopped." in system.output
