"""The suppression list fed by operators: a mixed import, idempotence, lookup, counts, and
candidates who stop being mailed at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.addresses import suppression_reason
from nurture.core.compliance import suppressions as service
from nurture.core.compliance.suppressions import suppress
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.errors import ValidationError
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Message, Suppression
from nurture.tasks.sending import send_messages
from tests.conftest import ats_post, auth_headers, running_app


@pytest.fixture
def system(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


@pytest.fixture
def folding(sqlite_url, clock):
    with running_app(
        sqlite_url,
        clock,
        SUPPRESSION_FOLD_DOMAINS=["gmail.com", "googlemail.com"],
        REDIS_URL="redis://127.0.0.1:1/0",
        SMTP_URL="smtp://127.0.0.1:1",
    ) as app:
        yield app


def now_of(app: Flask):
    return app.extensions["nurture.clock"].now()


def rows() -> int:
    return db.session.scalar(select(func.count()).select_from(Suppression))


def test_good_lines_land_and_bad_ones_are_named_with_line_and_reason(app: Flask) -> None:
    text = (
        "ana@example.org, Bo@Example.COM\n"
        "\n"
        "not-an-email\n"
        "chen@example\t dee@example.net ;\n"
        "ANA@example.org\n"
    )
    report = service.add_addresses(db.session, text, "bounced", now_of(app))
    db.session.commit()
    assert (report.added, report.already, report.duplicates) == (3, 0, 1)
    rejected = [(r.line, r.value) for r in report.rejected]
    assert rejected == [(3, "not-an-email"), (4, "chen@example")]
    assert "@-sign" in report.rejected[0].reason
    assert "period" in report.rejected[1].reason
    assert rows() == 3
    for email in ("ana@example.org", "bo@example.com", "dee@example.net"):
        assert suppression_reason(db.session, email) == "bounced"
    answer = report.as_dict()
    assert answer["rejected_count"] == 2 and answer["received"] == 6
    assert answer["rejected"][0] == {
        "line": 3,
        "value": "not-an-email",
        "reason": report.rejected[0].reason,
    }


def test_adding_again_is_idempotent_and_keeps_the_first_reason(app: Flask, clock) -> None:
    first = service.add_addresses(db.session, ["ana@example.org"], "unsubscribed", now_of(app))
    db.session.commit()
    clock.advance(timedelta(days=1))
    again = service.add_addresses(
        db.session, ["ana@example.org", "bo@example.org"], "bounced", now_of(app)
    )
    db.session.commit()
    assert (first.added, again.added, again.already) == (1, 1, 1)
    assert rows() == 2
    found = service.lookup(db.session, "Ana@Example.org")
    assert found is not None and found.reason == "unsubscribed" and found.exact
    assert found.since.date() == (now_of(app) - timedelta(days=1)).date()


def test_reason_defaults_to_manual_and_unknown_reasons_or_empty_lists_are_refused(
    app: Flask,
) -> None:
    report = service.add_addresses(db.session, "ana@example.org", None, now_of(app))
    assert report.reason == "manual"
    with pytest.raises(ValidationError) as bad:
        service.add_addresses(db.session, "bo@example.org", "erased", now_of(app))
    assert "reason" in bad.value.fields
    with pytest.raises(ValidationError) as empty:
        service.add_addresses(db.session, "\n , \n", "bounced", now_of(app))
    assert "emails" in empty.value.fields


def test_lookup_counts_and_folding(folding: Flask) -> None:
    now = now_of(folding)
    suppress(db.session, "ana@gmail.com", "complained", now)
    suppress(db.session, "gone@example.org", "erased", now)
    service.add_addresses(db.session, "bo@example.org\ncy@example.org", "manual", now)
    db.session.commit()
    variant = service.lookup(db.session, "a.n.a+jobs@googlemail.com")
    assert variant is not None and variant.reason == "complained" and not variant.exact
    assert service.lookup(db.session, "dee@example.org") is None
    with pytest.raises(ValidationError):
        service.lookup(db.session, "not an address")
    # Already suppressed by folding: counted as such, not added again.
    report = service.add_addresses(db.session, "ana+x@gmail.com", "bounced", now)
    assert (report.added, report.already) == (0, 1)
    assert service.counts(db.session) == {
        "by_reason": {"unsubscribed": 0, "bounced": 0, "complained": 1, "manual": 2, "erased": 1},
        "total": 4,
    }


def test_a_csv_export_uses_its_first_column_of_addresses(app: Flask) -> None:
    data = (
        "Name,Email,Recruiter,Unsubscribed at\n"
        "Ana,ana@example.org,rita@corp.example,2025-01-02\n"
        "Bo,,rita@corp.example,2025-01-03\n"
        "Cy,cy@,rita@corp.example,2025-01-04\n"
        'Dee,"dee@example.net",rita@corp.example,2025-01-05\n'
    ).encode("cp1252")
    report = service.add_csv(db.session, data, "unsubscribed", now_of(app))
    db.session.commit()
    assert report.added == 2
    assert [(r.line, r.value) for r in report.rejected] == [(3, ""), (4, "cy@")]
    assert "Email" in report.notes[0]
    # The recruiter column is never read: only the candidates' own addresses are suppressed.
    assert suppression_reason(db.session, "rita@corp.example") is None
    with pytest.raises(ValidationError) as no_column:
        service.add_csv(db.session, b"name,city\nAna,Berlin\n", "bounced", now_of(app))
    assert "file" in no_column.value.fields


def _drip(app: Flask) -> int:
    client, headers = app.test_client(), auth_headers(app, "editor")
    body = {
        "name": "Follow-up",
        "entry": {"ats_event": "candidate.rejected"},
        "steps": [
            {"delay": "PT0S", "template": "rejection_followup"},
            {"delay": "P3D", "template": "checkin_3_months"},
        ],
    }
    created = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert created.status_code == 201, created.json
    activated = client.post(f"/api/v1/campaigns/{created.json['id']}/activate", headers=headers)
    assert activated.status_code == 200, activated.json
    return created.json["id"]


def _reject(app: Flask, email: str) -> None:
    answer = ats_post(
        app.test_client(),
        {"type": "candidate.rejected", "candidate": {"email": email, "first_name": "Ana"}},
    )
    assert answer.status_code == 200, answer.json


def _send_due(app: Flask) -> None:
    create_due_messages(db.session, now_of(app))
    send_messages(list(db.session.scalars(select(Message.id))))


def _recipients(smtp: SmtpCapture) -> list[str]:
    return sorted(rcpt for message in smtp.messages for rcpt in message.rcpt_tos)


def test_an_enrolled_candidate_is_stopped_and_never_mailed_again(
    system: Flask, smtp: SmtpCapture, clock
) -> None:
    _drip(system)
    _reject(system, "ana@example.org")
    _reject(system, "bo@example.org")
    _send_due(system)
    assert _recipients(smtp) == ["ana@example.org", "bo@example.org"]
    smtp.clear()

    # Ana unsubscribed in the team's old tool: the import stops her drip at once.
    report = service.add_addresses(
        db.session, "Ana@Example.org\nnobody-known@example.org", "manual", now_of(system)
    )
    db.session.commit()
    assert (report.added, report.candidates_updated, report.enrolments_ended) == (2, 1, 1)
    ana_id, status = db.session.execute(
        select(Candidate.id, Candidate.status).where(Candidate.email == "ana@example.org")
    ).one()
    assert status == "unsubscribed"
    ended = db.session.scalar(select(Enrolment).where(Enrolment.candidate_id == ana_id))
    assert (ended.status, ended.exit_reason, ended.next_send_at) == ("exited", "suppressed", None)

    # The next step goes to Bo only; a new rejection does not bring Ana back either.
    clock.advance(timedelta(days=3, minutes=1))
    _reject(system, "ana@example.org")
    _send_due(system)
    assert _recipients(smtp) == ["bo@example.org"]
    assert db.session.scalar(select(Candidate.status).where(Candidate.id == ana_id)) == (
        "unsubscribed"
    )
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Enrolment)
            .where(Enrolment.candidate_id == ana_id, Enrolment.status == "active")
        )
        == 0
    )


def test_a_complaint_outranks_an_unsubscribe_and_erased_candidates_are_left_alone(
    app: Flask,
) -> None:
    now = now_of(app)
    headers = auth_headers(app, "editor")
    client = app.test_client()
    for email in ("ana@example.org", "bo@example.org"):
        assert (
            client.post("/api/v1/candidates", json={"email": email}, headers=headers).status_code
            == 201
        )
    service.add_addresses(db.session, "ana@example.org", "unsubscribed", now)
    report = service.add_addresses(db.session, "ana@example.org\nbo@example.org", "complained", now)
    db.session.commit()
    statuses = dict(db.session.execute(select(Candidate.email, Candidate.status)).all())
    assert statuses == {"ana@example.org": "complained", "bo@example.org": "complained"}
    assert (report.added, report.already, report.candidates_updated) == (1, 1, 2)
