"""Sending: one mail per message, however often or by how many workers the job runs."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.delivery.scheduling import create_due_messages
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Enrolment, Message, MessageState
from nurture.tasks.sending import send_messages
from tests.conftest import ats_post, auth_headers, running_app
from tests.support.paths import ROOT

DRIP = {
    "name": "Follow-up",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {"delay": "PT0S", "template": "rejection_followup"},
        {"delay": "P2D", "template": "checkin_3_months", "condition": "previous_not_opened"},
    ],
}


@pytest.fixture
def mail_app(database_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(database_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def enrol_people(app: Flask, count: int) -> list[int]:
    client = app.test_client()
    headers = auth_headers(app, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    for n in range(count):
        person = {"email": f"person{n}@example.org", "first_name": f"P{n}", "role": "Engineer"}
        assert (
            ats_post(client, {"type": "candidate.rejected", "candidate": person}).status_code == 200
        )
    now = app.extensions["nurture.clock"].now()
    created, _ = create_due_messages(db.session, now)
    assert created == count
    return list(db.session.scalars(select(Message.id).order_by(Message.id)))


def test_running_the_send_job_twice_sends_once(mail_app: Flask, smtp: SmtpCapture) -> None:
    ids = enrol_people(mail_app, 3)
    assert send_messages(ids) == {"sent": 3}
    assert send_messages(ids) == {}
    assert send_messages(ids[:1]) == {}
    assert len(smtp.messages) == 3
    states = db.session.scalars(select(Message.state)).all()
    assert states == ["sent"] * 3


def test_two_workers_at_once_send_each_message_once(
    mail_app: Flask, smtp: SmtpCapture, database_url: str, clock, redis_url: str, tmp_path: Path
) -> None:
    """Two real worker processes race for the same 40 ids; every message goes out once."""
    ids = enrol_people(mail_app, 40)
    env = {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SMTP_URL": smtp.url,
        "NURTURE_REDIS_URL": redis_url,
        "NURTURE_CLOCK": str(clock.path),
        "NURTURE_SECRET_KEY": mail_app.config["SECRET_KEY"],
        "NURTURE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PATH": "/usr/bin:/bin",
    }
    script = (
        "import sys\n"
        "from nurture import create_app\n"
        "from nurture.tasks.sending import close_sender, send_messages\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    sys.stdin.readline()\n"  # start together
        f"    print(send_messages({ids!r}))\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    assert len(smtp.messages) == 40
    recipients = sorted(m.rcpt_tos[0] for m in smtp.messages)
    assert recipients == sorted(f"person{n}@example.org" for n in range(40))
    sent = db.session.scalar(select(func.count()).where(Message.state == MessageState.SENT))
    assert sent == 40


def test_threads_racing_on_one_message_send_it_once(mail_app: Flask, smtp: SmtpCapture) -> None:
    ids = enrol_people(mail_app, 1)
    results: list[dict] = []

    def run() -> None:
        with mail_app.app_context():
            results.append(send_messages(ids))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(smtp.messages) == 1
    assert sorted(r.get("sent", 0) for r in results) == [0, 0, 0, 1]


def test_a_refused_recipient_fails_with_the_reason(mail_app: Flask, smtp: SmtpCapture) -> None:
    ids = enrol_people(mail_app, 2)
    smtp.fail_next("550 5.1.1 mailbox unknown")
    assert send_messages(ids) == {"failed": 1, "sent": 1}
    failed = db.session.scalar(select(Message).where(Message.state == MessageState.FAILED))
    assert "550" in failed.error
    enrolment = db.session.get(Enrolment, failed.enrolment_id)
    assert enrolment.status == "exited" and enrolment.exit_reason == "bounced"  # a 5xx is a bounce


def test_a_temporary_failure_requeues_and_the_retry_sends_once(
    mail_app: Flask, smtp: SmtpCapture
) -> None:
    ids = enrol_people(mail_app, 1)
    smtp.fail_next("421 4.3.0 try again later")
    assert send_messages(ids) == {"queued": 1}
    message = db.session.get(Message, ids[0])
    assert message.state == "queued" and "421" in message.error
    retry_at = message.retry_at
    assert send_messages(ids) == {}  # a job run again too soon sends nothing
    mail_app.extensions["nurture.clock"].set(retry_at)
    assert send_messages(ids) == {"sent": 1}
    assert len(smtp.messages) == 1


def test_a_step_condition_is_checked_at_send_time(
    mail_app: Flask, smtp: SmtpCapture, clock
) -> None:
    ids = enrol_people(mail_app, 1)
    send_messages(ids)
    # No open: the "previous_not_opened" resend goes out two days later.
    clock.advance(timedelta(days=2))
    created, _ = create_due_messages(db.session, clock.now())
    assert created == 1
    second = db.session.scalar(select(Message.id).order_by(Message.id.desc()))
    assert send_messages([second]) == {"sent": 1}
    assert len(smtp.messages) == 2


def test_one_batch_holds_the_frequency_cap_and_suppression_per_mail(
    mail_app: Flask, smtp: SmtpCapture, clock
) -> None:
    """Three campaigns' first mails to one person in one job: two go, the third is deferred."""
    from nurture.core.compliance.suppressions import suppress

    client = mail_app.test_client()
    headers = auth_headers(mail_app, "editor")
    # Regular mail: the cap never holds a personal step (the rejection follow-up's default).
    regular = DRIP | {"steps": [step | {"category": "regular"} for step in DRIP["steps"]]}
    for n in range(3):
        campaign = client.post(
            "/api/v1/campaigns", json=regular | {"name": f"Drip {n}"}, headers=headers
        ).json["id"]
        client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    for email in ("ana@example.org", "gone@example.org"):
        person = {"email": email, "first_name": "A"}
        ats_post(client, {"type": "candidate.rejected", "candidate": person})
    suppress(db.session, "gone@example.org", "unsubscribed", clock.now())
    db.session.commit()
    assert create_due_messages(db.session, clock.now()) == (6, 0)
    ids = list(db.session.scalars(select(Message.id).order_by(Message.id)))

    assert send_messages(ids) == {"sent": 2, "deferred": 1, "skipped": 3}
    assert [m.rcpt_tos for m in smtp.messages] == [["ana@example.org"]] * 2
    deferred = db.session.scalar(select(Message).where(Message.state == MessageState.QUEUED))
    # Deferred by the cap (2 mails per 7 days), not dropped: it may go a week after the first.
    assert deferred.retry_at == clock.now() + timedelta(days=7)
    assert deferred.attempts == 0
    skipped = db.session.scalars(select(Message.error).where(Message.state == "skipped")).all()
    assert skipped == ["suppressed"] * 3
