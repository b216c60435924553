"""The spine end to end: ATS webhook → scheduler → real Redis → real worker → real SMTP → tracking.

A real ``redis-server``, a real RQ worker process (``worker.py``) and a real aiosmtpd server take
part; time moves only when the test moves the shared file clock.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.dev.embedded import CapturedMessage, SmtpCapture
from nurture.extensions import db
from nurture.models import Message, MessageState
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import api_token, ats_post, make_app
from tests.support.paths import ROOT

DRIP = {
    "name": "Silver medalists",
    "kind": "drip",
    "entry": {"ats_event": "candidate.rejected"},
    "sender": {"name": "Acme Talent", "email": "talent@acme.example.com"},
    "steps": [
        {"delay": "PT1H", "template": "rejection_followup"},
        {"delay": "P3D", "template": "talent_network_invite"},
        {
            "delay": "P7D",
            "template": "checkin_3_months",
            "subject": "{{ candidate.first_name }}, checking in from {{ company.name }}",
        },
    ],
}

PEOPLE = {
    "ana": {
        "email": "Ana.Lima@Example.org",
        "first_name": "Ana",
        "last_name": "Lima",
        "role": "Staff Engineer",
        "stage": "final interview",
        "strengths": "the way you debugged the failing service under pressure",
        "recruiter_name": "Jordan Lee",
        "recruiter_email": "jordan@acme.example.com",
    },
    "bo": {"email": "bo@example.org", "first_name": "Bo", "role": "Designer"},
    "chen": {"email": "chen@example.org", "first_name": "Chén", "role": "Data Scientist"},
}


class Worker:
    """``python worker.py`` as an operator runs it, on the test's database, Redis and SMTP."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def system(database_url, clock, redis_url, smtp: SmtpCapture, tmp_path: Path):
    """The app plus a real worker process sharing its database, Redis, SMTP server and clock."""
    settings = {
        "REDIS_URL": redis_url,
        "SMTP_URL": smtp.url,
        "SENDER_EMAIL": "talent@acme.example.com",
        "COMPANY_NAME": "Acme",
        "POSTAL_ADDRESS": "Acme Inc, 1 Main St, Springfield",
    }
    app = make_app(database_url, clock, **settings)
    env = dict(os.environ)
    env.update({f"NURTURE_{key}": value for key, value in settings.items()})
    env.update(
        {
            "NURTURE_DATABASE_URL": database_url,
            "NURTURE_CLOCK": str(clock.path),
            "NURTURE_SECRET_KEY": app.config["SECRET_KEY"],
            "NURTURE_BASE_URL": app.config["BASE_URL"],
            "NURTURE_INSTANCE_PATH": str(tmp_path / "instance"),
        }
    )
    worker = Worker(env, tmp_path / "worker.log")
    with app.app_context():
        yield app, worker
        close_sender(app)
        db.session.remove()
        db.engine.dispose()
    worker.stop()


def drain(app: Flask, worker: Worker, timeout: float = 60.0) -> None:
    """Run a scheduler pass, then wait until the worker has settled every message."""
    run_tick(app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = db.session.scalar(
            select(func.count()).where(
                Message.state.in_([MessageState.QUEUED, MessageState.SENDING])
            )
        )
        db.session.remove()
        if pending == 0:
            return
        assert worker.process.poll() is None, worker.log.read_text()
        time.sleep(0.05)  # polling a real process, not waiting on the clock
    raise AssertionError(f"worker did not settle: {worker.log.read_text()[-3000:]}")


def parse(captured: CapturedMessage) -> EmailMessage:
    assert b"\r\n" in captured.data and b"\n" not in captured.data.replace(b"\r\n", b"")
    assert all(len(line) < 998 for line in captured.data.split(b"\r\n"))
    return email.message_from_bytes(captured.data, policy=email.policy.default)


def by_recipient(messages: list[CapturedMessage]) -> dict[str, list[EmailMessage]]:
    mails: dict[str, list[EmailMessage]] = {}
    for captured in messages:
        mails.setdefault(captured.rcpt_tos[0], []).append(parse(captured))
    return mails


def links(mail: EmailMessage) -> list[str]:
    html = mail.get_body(("html",)).get_content()
    return re.findall(r'(?:href|src)="([^"]+)"', html)


def test_drip_reaches_inboxes_and_reacts_to_candidates(system, clock, smtp, client=None) -> None:
    app, worker = system
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(app, 'editor')}"}

    created = client.post("/api/v1/campaigns", json=DRIP, headers=headers)
    assert created.status_code == 201, created.json
    campaign_id = created.json["id"]
    assert (
        client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=headers).json["status"]
        == "active"
    )

    for person in PEOPLE.values():
        answer = ats_post(client, {"type": "candidate.rejected", "candidate": person})
        assert answer.status_code == 200, answer.json
        assert answer.json["enrolled_campaign_ids"] == [campaign_id]

    # Nothing is due before the first step's delay.
    drain(app, worker)
    assert smtp.messages == []

    # Step 1, an hour after the rejection.
    clock.advance(timedelta(hours=1))
    drain(app, worker)
    first = by_recipient(smtp.wait_for(3))
    assert sorted(first) == ["ana.lima@example.org", "bo@example.org", "chen@example.org"]
    ana = first["ana.lima@example.org"][0]
    assert ana.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in ana.iter_parts()] == ["text/plain", "text/html"]
    assert ana["From"].addresses[0].display_name == "Jordan Lee"
    assert ana["From"].addresses[0].addr_spec == "jordan@acme.example.com"
    assert ana["Reply-To"] == "jordan@acme.example.com"
    assert ana["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<https://nurture\.test/u/[\w.-]+>", ana["List-Unsubscribe"])
    assert "campaign-" in ana["List-Id"]
    assert ana["Date"] and ana["Message-ID"]
    html = ana.get_body(("html",)).get_content()
    text = ana.get_body(("plain",)).get_content()
    for part in (html, text):
        assert "Staff Engineer" in part
        assert "the way you debugged the failing service under pressure" in part
        assert "{{" not in part and "None" not in part
    assert "Acme Inc, 1 Main St, Springfield" in html
    # Bo has no recruiter: the campaign's sender speaks for the team.
    bo = first["bo@example.org"][0]
    assert bo["From"].addresses[0].addr_spec == "talent@acme.example.com"
    # A UTF-8 name survives the headers and the body.
    chen = first["chen@example.org"][0]
    assert "Chén" in chen.get_body(("html",)).get_content()
    ids = {m["Message-ID"] for mails in first.values() for m in mails}
    assert len(ids) == 3

    # Ana opens and clicks; Bo unsubscribes with the RFC 8058 one-click POST; Chen is hired.
    # She reads it on her phone a few minutes later (an instant hit would be a scanner).
    clock.advance(timedelta(minutes=7))
    phone = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile"}
    pixel = next(url for url in links(ana) if "/o/" in url)
    assert client.get(pixel.removeprefix("https://nurture.test"), headers=phone).status_code == 200
    tracked = next(url for url in links(ana) if "/c/" in url)
    hop = client.get(tracked.removeprefix("https://nurture.test"), headers=phone)
    assert hop.status_code == 302 and hop.location.startswith("https://")
    unsubscribe = re.search(r"<https://nurture\.test(/u/[^>]+)>", bo["List-Unsubscribe"]).group(1)
    one_click = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    hired = ats_post(
        client, {"type": "candidate.hired", "candidate": {"email": "chen@example.org"}}
    )
    assert hired.json["status"] == "hired"

    # Step 2, three days later: only Ana.
    smtp.clear()
    clock.advance(timedelta(days=3))
    drain(app, worker)
    second = by_recipient(smtp.messages)
    assert list(second) == ["ana.lima@example.org"]
    assert "talent network" in second["ana.lima@example.org"][0]["Subject"].lower()

    # Step 3, a week after that: only Ana again, with the campaign's own subject line.
    smtp.clear()
    clock.advance(timedelta(days=7))
    drain(app, worker)
    third = by_recipient(smtp.messages)
    assert list(third) == ["ana.lima@example.org"]
    assert third["ana.lima@example.org"][0]["Subject"] == "Ana, checking in from Acme"

    # Weeks later nothing else goes out: the drip is complete.
    smtp.clear()
    clock.advance(timedelta(days=30))
    drain(app, worker)
    assert smtp.messages == []

    stats = client.get(f"/api/v1/campaigns/{campaign_id}/stats", headers=headers).json["steps"]
    assert [row["sent"] for row in stats] == [3, 1, 1]
    assert stats[0]["opened"] == 1 and stats[0]["clicked"] == 1
    assert stats[0]["unsubscribed"] == 1
    assert [row["failed"] for row in stats] == [0, 0, 0]

    ana_id = db.session.scalar(
        select(Message.candidate_id).where(Message.to_address == "ana.lima@example.org").limit(1)
    )
    profile = client.get(f"/api/v1/candidates/{ana_id}", headers=headers).json
    assert profile["enrolments"][0]["status"] == "completed"
    kinds = [item["type"] for item in profile["timeline"]]
    assert kinds.count("message.sent") == 3 and "open" in kinds and "click" in kinds
