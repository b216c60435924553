"""`nurture up` (what `make run` starts): the whole system comes up, the demo drip sends, and a
child that dies is started again while mail keeps flowing."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import mailbox
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nurture.dev.embedded import free_port
from tests.support.paths import ROOT


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert process.poll() is None, f"nurture up exited early while waiting for {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


ATS_SECRET = "up-test-ats-secret"


@dataclass
class Up:
    """A running ``nurture up`` and where to look at it."""

    process: subprocess.Popen
    log: Path
    port: int
    maildir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float, what: str) -> re.Match:
        found: list[re.Match] = []

        def seen() -> bool:
            match = re.search(pattern, self.output())
            if match:
                found.append(match)
            return bool(match)

        wait_for(seen, timeout, what, self.process)
        return found[0]

    def mails(self) -> list:
        return list(mailbox.Maildir(self.maildir)) if self.maildir.is_dir() else []

    def wait_mails(self, count: int, timeout: float, what: str) -> None:
        wait_for(lambda: len(self.mails()) >= count, timeout, what, self.process)

    def reject(self, email: str) -> None:
        """The ATS rejects a candidate: the demo drip's first step is due at once."""
        body = json.dumps(
            {"type": "candidate.rejected", "candidate": {"email": email, "first_name": "New"}}
        ).encode()
        signature = hmac.new(ATS_SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/ats/events",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Nurture-Signature": f"sha256={signature}",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


@contextlib.contextmanager
def nurture_up(tmp_path: Path) -> Iterator[Up]:
    """``nurture up`` on a free port with its own instance; Ctrl-C (SIGINT) stops it after."""
    port = free_port()
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(
        {
            "NURTURE_INSTANCE_PATH": str(instance),
            "NURTURE_SECRET_KEY": "up-test-secret-key",
            "NURTURE_ATS_SECRET": ATS_SECRET,
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
    up = Up(process, log, port, instance / "mailbox")
    try:
        wait_for(lambda: b"nurture is up" in log.read_bytes(), 60, "start-up", process)
        yield up
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def test_up_starts_everything_and_the_demo_drip_arrives(tmp_path: Path) -> None:
    with nurture_up(tmp_path) as up:
        output = up.output()
        assert f"http://127.0.0.1:{up.port}/admin/" in output
        credentials = re.search(r"demo login: (\S+) / (\S+)", output)
        assert credentials, output

        # The demo drip's first step reaches the local capture within a minute.
        up.wait_mails(5, 60, "five demo mails in the capture")
        subjects = {m["Subject"] for m in up.mails()}
        assert len(subjects) >= 1 and all(subjects)

        # The web app answers on the printed address.
        with urllib.request.urlopen(f"http://127.0.0.1:{up.port}/admin/login", timeout=10) as page:
            assert page.status == 200 and b"Sign in" in page.read()
        redis_port = int(re.search(r"embedded Redis on redis://127\.0\.0\.1:(\d+)", output)[1])
    # Ctrl-C stopped all of it: nothing listens on the web or Redis port any more.
    for closed in (up.port, redis_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", closed)) != 0
    assert "nurture stopped." in up.output()


def test_a_killed_worker_and_scheduler_come_back_and_mail_keeps_flowing(tmp_path: Path) -> None:
    """SIGKILL the worker, then the scheduler: each is restarted (and says so), and a candidate
    rejected afterwards still gets the drip's first mail."""
    with nurture_up(tmp_path) as up:
        up.wait_mails(5, 60, "five demo mails in the capture")
        for name in ("worker", "scheduler"):
            pid = int(up.wait_log(rf"starting {name} \(pid (\d+)\)", 10, name)[1])
            os.kill(pid, signal.SIGKILL)
            up.wait_log(rf"{name} exited with SIGKILL after \d+ s; restarting in 1 s", 10,
                        f"the {name}'s death noticed")  # fmt: skip
            restarted = up.wait_log(rf"restarted {name} \(pid (\d+), restart 1\)", 10,
                                    f"the {name} restarted")  # fmt: skip
            assert int(restarted[1]) != pid
        for n in range(3):
            up.reject(f"after.restart{n}@example.org")
        up.wait_mails(8, 60, "the three new candidates' mail, sent by the restarted processes")
        recipients = sorted(m["To"] for m in up.mails())
        assert [r for r in recipients if r.startswith("after.restart")] == [
            f"after.restart{n}@example.org" for n in range(3)
        ]
        assert up.process.poll() is None  # nothing stopped the system
    assert up.process.returncode == 0 and "nurture stopped." in up.output()
