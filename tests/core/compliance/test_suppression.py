"""Suppression that nothing gets past, including "+tag" and Gmail variations where configured."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.core.addresses import fold_domains, mailbox_of, suppressed_among, suppression_reason
from nurture.core.campaigns import openings as opening_service
from nurture.core.compliance.suppressions import suppress
from nurture.core.delivery.scheduling import create_due_messages
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Message
from nurture.tasks.sending import send_messages
from tests.conftest import ats_post, auth_headers, running_app

GMAIL = ["gmail.com", "googlemail.com"]


def test_mailbox_of_folds_tags_everywhere_and_dots_only_at_gmail() -> None:
    assert mailbox_of("Ana+Jobs@Example.org") == "ana@example.org"
    assert mailbox_of("a.n.a+x@googlemail.com") == "ana@gmail.com"
    assert mailbox_of("a.n.a@example.org") == "a.n.a@example.org"
    assert mailbox_of("+only@example.org") == "+only@example.org"  # no name left: keep it


def test_fold_domains_come_as_a_list_or_comma_separated_text() -> None:
    assert fold_domains({"SUPPRESSION_FOLD_DOMAINS": " Gmail.com, googlemail.com ,"}) == set(GMAIL)
    assert fold_domains({"SUPPRESSION_FOLD_DOMAINS": ["gmail.com"]}) == {"gmail.com"}
    assert fold_domains({}) == frozenset()


@pytest.fixture
def folding(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(
        sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url, SUPPRESSION_FOLD_DOMAINS=GMAIL
    ) as app:
        yield app


@pytest.fixture
def plain(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def _drip(app: Flask) -> int:
    client, headers = app.test_client(), auth_headers(app, "editor")
    body = {
        "name": "Follow-up",
        "entry": {"ats_event": "candidate.rejected"},
        "steps": [{"delay": "PT0S", "template": "rejection_followup"}],
    }
    created = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert created.status_code == 201, created.json
    assert (
        client.post(f"/api/v1/campaigns/{created.json['id']}/activate", headers=headers).status_code
        == 200
    )
    return created.json["id"]


def _reject_and_send(app: Flask, smtp: SmtpCapture, *emails: str) -> list[str]:
    for email in emails:
        person: dict[str, Any] = {"email": email, "first_name": "Ana"}
        answer = ats_post(app.test_client(), {"type": "candidate.rejected", "candidate": person})
        assert answer.status_code == 200, answer.json
    create_due_messages(db.session, app.extensions["nurture.clock"].now())
    send_messages(list(db.session.scalars(select(Message.id))))
    return sorted(rcpt for message in smtp.messages for rcpt in message.rcpt_tos)


def test_variations_of_a_suppressed_gmail_address_get_no_mail(
    folding: Flask, smtp: SmtpCapture
) -> None:
    now = folding.extensions["nurture.clock"].now()
    suppress(db.session, "ana@gmail.com", "unsubscribed", now)
    suppress(db.session, "bo@example.org", "bounced", now)
    db.session.commit()
    _drip(folding)
    received = _reject_and_send(
        folding, smtp,
        "Ana+Jobs@GMail.com", "a.n.a@googlemail.com", "ANA@gmail.com",
        "bo+x@example.org",  # example.org is not configured: a different mailbox
        "cy@gmail.com",
    )  # fmt: skip
    assert received == ["bo+x@example.org", "cy@gmail.com"]
    statuses = dict(db.session.execute(select(Candidate.email, Candidate.status)).all())
    # Saved as suppressed at once, so no campaign, broadcast or alert even tries them.
    assert statuses["ana+jobs@gmail.com"] == "unsubscribed"
    assert statuses["a.n.a@googlemail.com"] == "unsubscribed"


def test_a_suppressed_tagged_address_stops_the_plain_one_too(
    folding: Flask, smtp: SmtpCapture
) -> None:
    now = folding.extensions["nurture.clock"].now()
    suppress(db.session, "ana+newsletter@gmail.com", "complained", now)
    db.session.commit()
    assert suppression_reason(db.session, "ana@gmail.com") == "complained"
    assert suppression_reason(db.session, "ana+other@googlemail.com") == "complained"
    assert suppressed_among(db.session, ["ana@gmail.com", "bo@gmail.com", "ana.x@gmail.com"]) == {
        "ana@gmail.com"
    }
    _drip(folding)
    assert _reject_and_send(folding, smtp, "ana@gmail.com", "bo@gmail.com") == ["bo@gmail.com"]


def test_without_the_setting_a_tag_is_a_different_address(plain: Flask, smtp: SmtpCapture) -> None:
    now = plain.extensions["nurture.clock"].now()
    suppress(db.session, "ana@gmail.com", "unsubscribed", now)
    db.session.commit()
    _drip(plain)
    received = _reject_and_send(plain, smtp, "ana+jobs@gmail.com", "ANA@Gmail.com")
    # Case never makes a new address; a "+tag" does unless the domain is configured.
    assert received == ["ana+jobs@gmail.com"]


def test_job_alert_proposals_leave_out_folded_suppressions(folding: Flask) -> None:
    now = folding.extensions["nurture.clock"].now()
    client, headers = folding.test_client(), auth_headers(folding, "editor")
    ids = {}
    for email in ("ana+cv@gmail.com", "bo@gmail.com"):
        person = {"email": email, "skills": ["python", "sql"], "role": "Data engineer"}
        answer = client.post("/api/v1/candidates", json=person, headers=headers)
        assert answer.status_code == 201, answer.json
        ids[email] = answer.json["id"]
    # Suppressed after saving (an unsubscribe from another list, say): never proposed.
    suppress(db.session, "ana@gmail.com", "unsubscribed", now)
    db.session.commit()
    job = opening_service.create_opening(
        db.session,
        {
            "title": "Data Engineer",
            "role_family": "data",
            "skills": ["Python"],
            "location": "Remote",
            "url": "https://careers.example.com/jobs/7",
        },
        now,
    )
    proposed = [p.candidate_id for p in opening_service.find_matches(db.session, job, now)]
    assert proposed == [ids["bo@gmail.com"]]
