"""Replies reach a person, end to end: a drip mail goes out through SMTP; the candidate's reply
and an out-of-office land in a real Dovecot mailbox; the inbound pass keeps the reply for the
inbox and forwards it to the recruiter over SMTP (the auto-reply is filtered); the recruiter's
copy is no campaign mail; the inbox marks it handled; the ATS hears ``candidate.replied``."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Reply, WebhookDelivery
from nurture.tasks.inbound import process_inbound
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import ats_post, auth_headers, make_app, require
from tests.support import imap
from tests.support.workers import drain

DRIP = {
    "name": "Silver medalists",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [{"delay": "PT1H", "template": "rejection_followup"}],
}
ANA = {
    "email": "ana@example.org",
    "first_name": "Ana",
    "last_name": "Lima",
    "role": "Staff Engineer",
    "recruiter_name": "Jordan Lee",
    "recruiter_email": "jordan@acme.example.com",
}


@pytest.fixture
def dovecot() -> Iterator[imap.DovecotServer]:
    require(imap.available(), "Dovecot (apt-get install dovecot-imapd)")
    with imap.DovecotServer() as server:
        yield server


@pytest.fixture
def system(sqlite_url, clock, smtp: SmtpCapture, redis_url, dovecot, tmp_path) -> Iterator[Flask]:
    app = make_app(
        sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url, INBOUND_IMAP_URL=dovecot.url,
        ATS_WEBHOOK_URL="http://127.0.0.1:9/unused", SENDER_EMAIL="talent@acme.example.com",
        COMPANY_NAME="Acme",
    )  # fmt: skip
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def _reply_to(original: email.message.Message, text: str, **headers: str) -> bytes:
    reply = EmailMessage()
    reply["From"] = "Ana Lima <ana@example.org>"
    reply["To"] = original["Reply-To"] or original["From"]
    reply["Subject"] = f"Re: {original['Subject']}"
    reply["Message-ID"] = make_msgid(domain="example.org")
    reply["In-Reply-To"] = original["Message-ID"]
    reply["References"] = original["Message-ID"]
    for name, value in headers.items():
        reply[name.replace("_", "-")] = value
    reply.set_content(text)
    return bytes(reply)


QUOTED = """Thank you Jordan, that means a lot. I'd love to hear about the platform role
when it opens, and I'm free for a call next week.

Best,
Ana

On Mon, 2 Mar 2026 at 10:00, Jordan Lee <jordan@acme.example.com> wrote:
> Hi Ana,
> I wanted to write to you myself after our decision.
"""


def test_a_reply_goes_to_the_recruiter_and_waits_in_the_inbox_until_handled(
    system: Flask, smtp: SmtpCapture, dovecot: imap.DovecotServer, clock
) -> None:
    client = system.test_client()
    editor = auth_headers(system, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=editor).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)
    ats_post(client, {"type": "candidate.rejected", "candidate": ANA})
    clock.advance(timedelta(hours=1))
    run_tick(system)
    drain(system)
    [sent] = smtp.wait_for(1)
    original = sent.as_email()
    smtp.clear()

    dovecot.deliver(_reply_to(original, QUOTED))
    dovecot.deliver(
        _reply_to(original, "I am out of the office until Monday.", Auto_Submitted="auto-replied")
    )
    counts = process_inbound(system)
    assert (counts["reply"], counts["auto_reply"], counts["forwarded"]) == (1, 1, 1)

    # The recruiter's copy: from nurture on the candidate's behalf, answerable to the candidate.
    [forwarded] = smtp.wait_for(1)
    assert forwarded.rcpt_tos == ["jordan@acme.example.com"]
    mail = email.message_from_bytes(forwarded.data, policy=email.policy.default)
    assert mail["From"].addresses[0].addr_spec == "talent@acme.example.com"
    assert "Ana Lima via Acme" in str(mail["From"])
    assert mail["Reply-To"].addresses[0].addr_spec == "ana@example.org"
    assert mail["Subject"] == f"Re: {original['Subject']}"
    assert original["Message-ID"] in mail["References"]  # threads under the conversation
    assert mail["Auto-Submitted"] == "auto-forwarded"
    # Not a campaign mail: no unsubscribe header or footer, no tracking.
    assert mail["List-Unsubscribe"] is None
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert "/o/" not in body and "/c/" not in body and "nsubscribe" not in body
    assert "I'd love to hear about the platform role" in text
    assert "> I wanted to write to you myself" not in text.split("---- The conversation")[0]
    assert f"We wrote: {original['Subject']}" in text  # the conversation so far
    [attached] = [part for part in mail.iter_attachments()]
    assert attached.get_content_type() == "message/rfc822"
    assert "out of the office" not in forwarded.data.decode("utf-8", "replace")

    # The inbox: one open reply, the auto-reply filtered; the ATS is told.
    viewer = auth_headers(system, "viewer")
    inbox = client.get("/api/v1/replies", headers=viewer).json
    assert inbox["counts"] == {"open": 1, "handled": 0}
    [reply] = inbox["replies"]
    assert reply["text"].startswith("Thank you Jordan") and "wrote:" not in reply["text"]
    assert reply["forward"]["state"] == "sent"
    [event] = db.session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.event_type == "candidate.replied")
    ).all()
    assert "platform role" in event.body
    # Kept as text only once forwarded.
    assert db.session.scalars(select(Reply)).one().raw is None

    assert client.post(f"/api/v1/replies/{reply['id']}/handled", headers=viewer).status_code == 403
    done = client.post(f"/api/v1/replies/{reply['id']}/handled", headers=editor)
    assert done.json["state"] == "handled"
    assert client.get("/api/v1/replies", headers=viewer).json["counts"] == {
        "open": 0, "handled": 1,
    }  # fmt: skip
    assert client.get("/api/v1/replies?state=nope", headers=viewer).status_code == 422
    timeline = client.get(f"/api/v1/candidates/{reply['candidate_id']}", headers=viewer).json
    assert "reply" in [item["type"] for item in timeline["timeline"]]

    # A second pass forwards nothing twice.
    assert process_inbound(system)["forwarded"] == 0
    assert len(smtp.messages) == 1


def test_a_reply_without_a_recruiter_goes_to_the_team_address_and_waits_out_an_outage(
    sqlite_url, clock, smtp: SmtpCapture, redis_url, dovecot: imap.DovecotServer
) -> None:
    app = make_app(
        sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url, INBOUND_IMAP_URL=dovecot.url,
        REPLY_TEAM_ADDRESS="talent-team@acme.example.com", FREQUENCY_CAP={},
    )  # fmt: skip
    with app.app_context():
        client = app.test_client()
        editor = auth_headers(app, "editor")
        campaign = client.post("/api/v1/campaigns", json=DRIP, headers=editor).json["id"]
        client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)
        ats_post(client, {"type": "candidate.rejected", "candidate": {"email": "bo@example.org"}})
        clock.advance(timedelta(hours=1))
        run_tick(app)
        drain(app)
        [sent] = smtp.wait_for(1)
        smtp.clear()
        dovecot.deliver(_reply_to(sent.as_email(), "Thanks, keep me posted."))

        app.config["SMTP_URL"] = "smtp://127.0.0.1:1"  # the relay is down
        assert process_inbound(app)["reply"] == 1
        reply = db.session.scalars(select(Reply)).one()
        assert (reply.forward_state, reply.forward_attempts) == ("pending", 1)
        assert reply.forward_to == "talent-team@acme.example.com"
        assert reply.raw is not None  # kept to attach once the relay is back

        app.config["SMTP_URL"] = smtp.url
        process_inbound(app)  # too early for the retry
        assert smtp.messages == []
        clock.advance(timedelta(minutes=1))
        assert process_inbound(app)["forwarded"] == 1
        [forwarded] = smtp.wait_for(1)
        assert forwarded.rcpt_tos == ["talent-team@acme.example.com"]
        close_sender(app)
        db.session.remove()
        db.engine.dispose()
