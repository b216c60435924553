"""A reply ends the drip, end to end: scheduler → Redis → RQ worker → SMTP, reply → Dovecot → pass.

Step 1 goes out through the real SMTP server; the candidate's reply (threaded on the Message-ID
that arrived there) lands in a real Dovecot IMAP mailbox; `nurture inbound --once` reads it; when
step 2 falls due, nothing is sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Event
from nurture.tasks import get_queue
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from nurture.tasks.worker import SendWorker
from tests.conftest import ats_post, auth_headers, make_app, require
from tests.support import imap
from tests.support.paths import ROOT

DRIP = {
    "name": "Silver medalists",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {"delay": "PT1H", "template": "rejection_followup"},
        {"delay": "P3D", "template": "talent_network_invite"},
    ],
}


@pytest.fixture
def dovecot() -> Iterator[imap.DovecotServer]:
    require(imap.available(), "Dovecot (apt-get install dovecot-imapd)")
    with imap.DovecotServer() as server:
        yield server


@pytest.fixture
def system(sqlite_url, clock, smtp: SmtpCapture, redis_url, dovecot: imap.DovecotServer):
    app = make_app(
        sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url, INBOUND_IMAP_URL=dovecot.url
    )
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def work(app: Flask) -> None:
    """Scheduler pass, then a real RQ worker until the queue is empty."""
    run_tick(app)
    queue = get_queue(app)
    SendWorker([queue], connection=queue.connection).work(burst=True)


def test_a_reply_ends_the_drip(
    system: Flask, smtp: SmtpCapture, dovecot: imap.DovecotServer, clock, sqlite_url, tmp_path
) -> None:
    client = system.test_client()
    headers = auth_headers(system, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    person = {"email": "ana@example.org", "first_name": "Ana"}
    ats_post(client, {"type": "candidate.rejected", "candidate": person})

    clock.advance(timedelta(hours=1))
    work(system)
    [sent] = smtp.wait_for(1)
    original = sent.as_email()

    reply = EmailMessage()
    reply["From"] = "Ana <ana@example.org>"
    reply["To"] = original["Reply-To"] or original["From"]
    reply["Subject"] = f"Re: {original['Subject']}"
    reply["Message-ID"] = make_msgid(domain="example.org")
    reply["In-Reply-To"] = original["Message-ID"]
    reply["References"] = original["Message-ID"]
    reply.set_content("Thank you! Happy to talk about the next opening.")
    dovecot.deliver(bytes(reply))

    # The pass as an operator (or the scheduler) runs it: `nurture inbound --once`.
    env = {
        **os.environ,
        "NURTURE_DATABASE_URL": sqlite_url,
        "NURTURE_CLOCK": str(clock.path),
        "NURTURE_SECRET_KEY": system.config["SECRET_KEY"],
        "NURTURE_INSTANCE_PATH": str(tmp_path / "instance"),
        "NURTURE_INBOUND_IMAP_URL": dovecot.url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "nurture.cli", "inbound", "--once"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 reply" in result.stdout

    db.session.expire_all()
    enrolment = db.session.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.exit_reason) == ("exited", "replied")
    candidate = db.session.scalars(select(Candidate)).one()
    assert candidate.last_replied_at is not None
    [event] = db.session.scalars(select(Event).where(Event.kind == "reply")).all()
    assert event.value == f"Re: {original['Subject']}"
    timeline = client.get(
        f"/api/v1/candidates/{candidate.id}", headers=auth_headers(system, "viewer")
    ).json["timeline"]
    assert "reply" in [item["type"] for item in timeline]

    clock.advance(timedelta(days=4))
    work(system)
    assert len(smtp.messages) == 1  # step 2 never went out
