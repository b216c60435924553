"""Inbound mail: real DSN, ARF and reply mail read from a real Dovecot IMAP server; the webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.addresses import email_hash, is_suppressed
from nurture.core.campaigns import service as campaign_service
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.feedback import inbound
from nurture.core.feedback.mailbox import parse_url
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import (
    Campaign,
    Candidate,
    Enrolment,
    Event,
    Message,
    MessageState,
    Suppression,
)
from nurture.tasks.inbound import process_inbound
from nurture.tasks.sending import close_sender, send_messages
from tests.conftest import ats_post, auth_headers, make_app, require
from tests.support import imap
from tests.support.paths import FIXTURES

INBOUND = FIXTURES / "inbound"
WEBHOOK_SECRET = "test-bounce-secret"
DRIP = {
    "name": "Follow-up",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {"delay": "PT0S", "template": "rejection_followup"},
        {"delay": "P2D", "template": "checkin_3_months"},
    ],
}


def fixture(name: str, message_id: str, recipient: str) -> bytes:
    """A fixture with our Message-ID and recipient put in."""
    raw = (INBOUND / name).read_bytes()
    return raw.replace(b"{{MESSAGE_ID}}", message_id.encode()).replace(
        b"{{RECIPIENT}}", recipient.encode()
    )


@pytest.fixture(scope="module")
def dovecot() -> Iterator[imap.DovecotServer]:
    """A real Dovecot IMAP server for this module."""
    require(imap.available(), "Dovecot (apt-get install dovecot-imapd)")
    with imap.DovecotServer() as server:
        yield server


@pytest.fixture
def mailbox(dovecot: imap.DovecotServer) -> imap.DovecotServer:
    """The IMAP server with an empty INBOX."""
    dovecot.clear()
    return dovecot


@pytest.fixture
def inbound_app(database_url, clock, smtp: SmtpCapture, mailbox: imap.DovecotServer):
    """The app sending to the SMTP sink and reading bounces and replies from Dovecot."""
    app = make_app(
        database_url,
        clock,
        SMTP_URL=smtp.url,
        REDIS_URL="redis://127.0.0.1:1/0",
        BOUNCE_IMAP_URL=mailbox.url,
        INBOUND_IMAP_URL=mailbox.url,
        BOUNCE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SOFT_BOUNCE_LIMIT=2,
    )
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


@dataclass(frozen=True)
class Sent:
    """A mail we sent, as plain values (sessions end with each inbound pass)."""

    campaign_id: int
    id: int
    message_id: str


def start_drip(app: Flask, email: str = "ada@example.org", **extra: object) -> Sent:
    """Enrol a rejected candidate in a two-step drip (``extra`` in its body) and send step 1."""
    client = app.test_client()
    headers = auth_headers(app, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP | extra, headers=headers).json["id"]
    assert client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers).status_code == 200
    person = {"email": email, "first_name": "Ada"}
    assert ats_post(client, {"type": "candidate.rejected", "candidate": person}).status_code == 200
    assert send_due(app) == {"sent": 1}
    return last_sent(campaign)


def last_sent(campaign: int) -> Sent:
    message = db.session.scalars(select(Message).order_by(Message.id.desc())).first()
    assert message is not None and message.message_id.startswith("<nurture.")
    return Sent(campaign, message.id, message.message_id)


def send_due(app: Flask) -> dict[str, int]:
    created, _ = create_due_messages(db.session, app.extensions["nurture.clock"].now())
    db.session.commit()
    ids = list(db.session.scalars(select(Message.id).where(Message.state == MessageState.QUEUED)))
    return send_messages(ids) if ids else {}


def snapshot() -> tuple:
    """Everything an inbound pass may change, to show that a second pass changes nothing."""
    db.session.expire_all()
    return (
        db.session.scalar(select(func.count()).select_from(Event)),
        db.session.scalar(select(func.count()).select_from(Suppression)),
        tuple(db.session.execute(select(Candidate.status, Candidate.soft_bounces)).all()),
        tuple(db.session.execute(select(Enrolment.status, Enrolment.exit_reason)).all()),
    )


def events(kind: str) -> list[Event]:
    return list(db.session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def only_candidate() -> Candidate:
    db.session.expire_all()
    return db.session.scalars(select(Candidate)).one()


def only_enrolment() -> Enrolment:
    return db.session.scalars(select(Enrolment)).one()


# --- classifying, no server -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "hard", "status"),
    [
        ("postfix_hard.eml", "bounce", True, "5.1.1"),
        ("exim_hard.eml", "bounce", True, "5.1.1"),
        ("gmail_hard.eml", "bounce", True, "5.1.1"),
        ("gmail_over_quota.eml", "bounce", False, "5.2.2"),
        ("postfix_delayed.eml", "bounce", False, "4.2.2"),
        ("rfc3464_timeout.eml", "bounce", False, "4.0.0"),
        ("arf_rfc5965.eml", "complaint", None, ""),
        ("yahoo_arf.eml", "complaint", None, ""),
        ("aol_arf_redacted.eml", "complaint", None, ""),
        ("reply.eml", "reply", None, ""),
        ("out_of_office.eml", "auto_reply", None, ""),
    ],
)
def test_each_fixture_is_read_as_what_it_is(name: str, kind: str, hard, status: str) -> None:
    ours = "<nurture.7.0badc0ffee@example.com>"
    found = inbound.classify(fixture(name, ours, "Ada.Lovelace@Example.org"))
    assert found.kind == kind
    assert found.refs[0] == ours
    if kind == "bounce":
        [failure] = found.failures
        assert (failure.email, failure.hard, failure.status) == (
            "ada.lovelace@example.org",
            hard,
            status,
        )
        assert failure.diagnostic
    if name == "aol_arf_redacted.eml":
        assert found.complainant == ""  # AOL redacts it: the Message-ID must find the candidate
    elif kind == "complaint":
        assert found.complainant == "ada.lovelace@example.org"


def test_plain_mail_and_bad_input_are_neither_bounce_nor_reply() -> None:
    assert inbound.classify(b"From: a@example.org\r\nSubject: hello\r\n\r\nhi\r\n").kind == "other"
    assert inbound.classify(b"\x00\xff garbage").kind == "other"
    not_spam = (INBOUND / "yahoo_arf.eml").read_bytes().replace(b"abuse", b"not-spam")
    assert inbound.classify(not_spam).kind == "other"


def test_mailbox_urls_are_checked() -> None:
    box = parse_url("imaps://bounces%40acme.example:p%40ss@imap.example.com/Bounces")
    assert (box.scheme, box.host, box.port, box.user, box.password, box.folder) == (
        "imaps", "imap.example.com", 993, "bounces@acme.example", "p@ss", "Bounces",
    )  # fmt: skip
    assert parse_url("maildir:///var/mail/in").path == "/var/mail/in"
    for bad in ("pop3://u@h", "imap://host-without-user", ""):
        with pytest.raises(inbound_errors()):
            parse_url(bad, "BOUNCE_IMAP_URL")


def inbound_errors():
    from nurture.core.errors import ValidationError

    return ValidationError


# --- through the real IMAP server -----------------------------------------------------------


@pytest.mark.parametrize("name", ["postfix_hard.eml", "exim_hard.eml", "gmail_hard.eml"])
def test_a_hard_bounce_suppresses_ends_the_drip_and_counts_in_stats(
    inbound_app: Flask, mailbox: imap.DovecotServer, name: str
) -> None:
    message = start_drip(inbound_app)
    mailbox.deliver(fixture(name, message.message_id, "Ada@Example.org"))

    assert process_inbound(inbound_app) == {"bounce": 1}

    candidate = only_candidate()
    assert candidate.status == "bounced"
    assert is_suppressed(db.session, "ada@example.org")
    assert (only_enrolment().status, only_enrolment().exit_reason) == ("exited", "bounced")
    [event] = events("bounce")
    assert (event.message_id, event.value, event.machine) == (message.id, "hard", False)
    assert "5.1.1" in db.session.get(Message, message.id).error
    campaign = db.session.get(Campaign, message.campaign_id)
    step1 = campaign_service.campaign_stats(db.session, campaign)[0]
    assert (step1["sent"], step1["bounced"]) == (1, 1)
    timeline = (
        inbound_app.test_client()
        .get(f"/api/v1/candidates/{candidate.id}", headers=auth_headers(inbound_app, "viewer"))
        .json["timeline"]
    )
    assert "bounce" in [item["type"] for item in timeline]

    before = snapshot()
    assert process_inbound(inbound_app) == {}  # the mail is seen now
    # The same report delivered again (a crash before it was marked seen) changes nothing.
    mailbox.deliver(fixture(name, message.message_id, "Ada@Example.org"))
    assert process_inbound(inbound_app) == {"duplicate": 1}
    assert snapshot() == before


@pytest.mark.parametrize("name", ["arf_rfc5965.eml", "yahoo_arf.eml", "aol_arf_redacted.eml"])
def test_a_complaint_suppresses_and_ends_the_drip(
    inbound_app: Flask, mailbox: imap.DovecotServer, name: str
) -> None:
    message = start_drip(inbound_app)
    mailbox.deliver(fixture(name, message.message_id, "ada@example.org"))

    assert process_inbound(inbound_app) == {"complaint": 1}

    assert only_candidate().status == "complained"
    assert is_suppressed(db.session, "ada@example.org")
    assert only_enrolment().exit_reason == "complained"
    [event] = events("complaint")
    assert event.message_id == message.id
    before = snapshot()
    assert process_inbound(inbound_app) == {}
    assert snapshot() == before


def test_soft_bounces_count_until_the_limit(
    inbound_app: Flask, mailbox: imap.DovecotServer, clock
) -> None:
    """SOFT_BOUNCE_LIMIT=2: one soft bounce keeps mailing; the second on another mail suppresses."""
    first = start_drip(inbound_app)
    mailbox.deliver(fixture("postfix_delayed.eml", first.message_id, "ada@example.org"))
    assert process_inbound(inbound_app) == {"bounce": 1}
    candidate = only_candidate()
    assert (candidate.status, candidate.soft_bounces) == ("active", 1)
    assert only_enrolment().status == "active"
    assert not is_suppressed(db.session, "ada@example.org")
    assert [e.value for e in events("bounce")] == ["soft"]

    # A second warning about the same mail (another report, same original) is not a new bounce.
    again = fixture("rfc3464_timeout.eml", first.message_id, "ada@example.org")
    mailbox.deliver(again)
    process_inbound(inbound_app)
    assert only_candidate().soft_bounces == 1

    clock.advance(timedelta(days=2))
    assert send_due(inbound_app) == {"sent": 1}
    second = last_sent(first.campaign_id)
    mailbox.deliver(fixture("gmail_over_quota.eml", second.message_id, "ada@example.org"))
    assert process_inbound(inbound_app) == {"bounce": 1}
    candidate = only_candidate()
    assert (candidate.status, candidate.soft_bounces) == ("bounced", 2)
    assert is_suppressed(db.session, "ada@example.org")
    assert [e.value for e in events("bounce")] == ["soft", "hard"]


def test_a_reply_ends_the_drip_and_an_auto_reply_does_not(
    inbound_app: Flask, mailbox: imap.DovecotServer, clock
) -> None:
    message = start_drip(inbound_app)
    mailbox.deliver(fixture("out_of_office.eml", message.message_id, "ada@example.org"))
    assert process_inbound(inbound_app) == {"auto_reply": 1}
    assert only_enrolment().status == "active"
    assert only_candidate().last_replied_at is None
    [auto] = events("reply")
    assert auto.machine is True

    clock.advance(timedelta(hours=1))
    mailbox.deliver(fixture("reply.eml", message.message_id, "ada@example.org"))
    assert process_inbound(inbound_app) == {"reply": 1}
    candidate = only_candidate()
    assert candidate.last_replied_at is not None
    assert candidate.status == "active"  # replying is not opting out
    assert (only_enrolment().status, only_enrolment().exit_reason) == ("exited", "replied")
    human = events("reply")[-1]
    assert (human.message_id, human.value, human.machine) == (
        message.id,
        "Re: Thank you for interviewing with us",
        False,
    )
    clock.advance(timedelta(days=3))
    assert send_due(inbound_app) == {}


def test_a_drip_without_the_reply_rule_goes_on_after_a_reply(
    inbound_app: Flask, mailbox: imap.DovecotServer, clock
) -> None:
    # The team keeps this drip going when people answer: replying is not opting out.
    message = start_drip(inbound_app, exit_on=["hired"])
    mailbox.deliver(fixture("reply.eml", message.message_id, "ada@example.org"))
    assert process_inbound(inbound_app) == {"reply": 1}
    assert only_candidate().last_replied_at is not None
    assert only_enrolment().status == "active"
    clock.advance(timedelta(days=3))
    assert send_due(inbound_app) == {"sent": 1}


def test_a_bounce_for_an_unknown_message_still_suppresses_a_known_address(
    inbound_app: Flask, mailbox: imap.DovecotServer
) -> None:
    start_drip(inbound_app)
    mailbox.deliver(fixture("postfix_hard.eml", "<lost-1@elsewhere.example>", "ada@example.org"))
    mailbox.deliver(fixture("exim_hard.eml", "<lost-2@elsewhere.example>", "nobody@example.net"))
    assert process_inbound(inbound_app) == {"bounce": 2}
    assert only_candidate().status == "bounced"
    [event] = events("bounce")
    assert event.message_id is None and event.value == "hard"
    # Not a candidate, but never to be mailed either.
    assert is_suppressed(db.session, "nobody@example.net")


def test_a_maildir_is_read_like_a_mailbox(
    database_url, clock, smtp: SmtpCapture, tmp_path: Path
) -> None:
    maildir = tmp_path / "inbound"
    app = make_app(database_url, clock, SMTP_URL=smtp.url, INBOUND_IMAP_URL=f"maildir://{maildir}")
    with app.app_context():
        try:
            message = start_drip(app)
            import mailbox as stdlib_mailbox

            box = stdlib_mailbox.Maildir(maildir, create=True)
            box.add(fixture("reply.eml", message.message_id, "ada@example.org"))
            assert process_inbound(app) == {"reply": 1}
            assert process_inbound(app) == {}
            assert only_enrolment().exit_reason == "replied"
        finally:
            close_sender(app)
            db.session.remove()
            db.engine.dispose()


# --- the webhook --------------------------------------------------------------------------


def post(app: Flask, payload, secret: str = WEBHOOK_SECRET):
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return app.test_client().post(
        "/api/v1/bounces",
        data=body,
        content_type="application/json",
        headers={"X-Nurture-Signature": f"sha256={signature}"},
    )


def test_the_webhook_needs_a_good_signature(inbound_app: Flask) -> None:
    start_drip(inbound_app)
    report = {"type": "bounce", "email": "ada@example.org", "bounce_type": "hard"}
    answer = post(inbound_app, report, secret="wrong")
    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "bad_signature"
    assert only_candidate().status == "active"
    assert not is_suppressed(db.session, "ada@example.org")


def test_the_webhook_records_bounces_and_complaints(inbound_app: Flask) -> None:
    message = start_drip(inbound_app)
    soft = {
        "type": "bounce",
        "email": "ADA@example.org",
        "bounce_type": "soft",
        "message_id": message.message_id,
        "diagnostic": "452 4.2.2 mailbox full",
    }
    answer = post(inbound_app, soft)
    assert answer.status_code == 200
    assert answer.json["matched"] is True and answer.json["suppressed"] is False
    assert post(inbound_app, soft).json["duplicate"] is True  # a retried delivery of the hook
    assert only_candidate().soft_bounces == 1

    answer = post(
        inbound_app,
        [
            {"type": "complaint", "email": "ada@example.org", "message_id": message.message_id},
            {"type": "bounce", "email": "stranger@example.net", "bounce_type": "hard"},
            {"type": "complaint", "email": "other@example.net"},
        ],
    )
    assert answer.status_code == 200
    results = answer.json["results"]
    assert [r["matched"] for r in results] == [True, False, False]
    assert only_candidate().status == "complained"
    assert only_enrolment().exit_reason == "complained"
    for address in ("ada@example.org", "stranger@example.net", "other@example.net"):
        assert is_suppressed(db.session, address), address
    [complaint] = events("complaint")
    assert complaint.message_id == message.id


def test_the_webhook_rejects_bad_reports_whole(inbound_app: Flask) -> None:
    start_drip(inbound_app)
    answer = post(
        inbound_app,
        [
            {"type": "bounce", "email": "ada@example.org", "bounce_type": "hard"},
            {"type": "bounced", "email": "not an address", "bounce_type": "permanent"},
        ],
    )
    assert answer.status_code == 422
    assert set(answer.json["error"]["fields"]) == {"[1].type", "[1].email", "[1].bounce_type"}
    assert only_candidate().status == "active"
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert post(inbound_app, {"type": "bounce", "email": "a@b.example", "message_id": "x"}).json[
        "error"
    ]["fields"] == {"message_id": "must be a Message-ID such as <abc@example.com>"}


def test_the_webhook_is_off_without_a_secret(app: Flask) -> None:
    answer = post(app, {"type": "bounce", "email": "a@b.example"})
    assert answer.status_code == 503
    assert (
        db.session.scalar(
            select(func.count()).where(Suppression.email_hash == email_hash("a@b.example"))
        )
        == 0
    )
