"""`nurture up` (what `make run` starts): the whole system comes up and the demo drip sends."""

from __future__ import annotations

import mailbox
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from nurture.dev.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert process.poll() is None, f"nurture up exited early while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_up_starts_everything_and_the_demo_drip_arrives(tmp_path: Path) -> None:
    port = free_port()
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(
        {
            "NURTURE_INSTANCE_PATH": str(instance),
            "NURTURE_SECRET_KEY": "up-test-secret-key",
            "NURTURE_ATS_SECRET": "up-test-ats-secret",
            "NURTURE_SCHEDULER_INTERVAL": "1",
        }
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "nurture.cli", "up", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: b"nurture is up" in log.read_bytes(), 60, "start-up", process)
        output = log.read_text()
        assert f"http://127.0.0.1:{port}/admin/" in output
        credentials = re.search(r"demo login: (\S+) / (\S+)", output)
        assert credentials, output

        # The demo drip's first step reaches the local capture within a minute.
        maildir = instance / "mailbox"
        wait_for(
            lambda: maildir.is_dir() and len(mailbox.Maildir(maildir)) >= 5,
            60,
            "five demo mails in the capture",
            process,
        )
        subjects = {m["Subject"] for m in mailbox.Maildir(maildir)}
        assert len(subjects) >= 1 and all(subjects)

        # The web app answers on the printed address.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login", timeout=10) as page:
            assert page.status == 200 and b"Sign in" in page.read()
        redis_port = int(re.search(r"embedded Redis on redis://127\.0\.0\.1:(\d+)", output)[1])
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    # Ctrl-C stopped all of it: nothing listens on the web or Redis port any more.
    for closed in (port, redis_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", closed)) != 0
    assert "nurture stopped." in log.read_text()
