"""Entries and exits: ATS filters, entry delay, re-entry, segment entry, and who leaves when."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, current_app
from sqlalchemy import select

from nurture.core.campaigns.entries import run_entries
from nurture.core.campaigns.schemas import EntryFilter
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.errors import ValidationError
from nurture.core.inputs import parse
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Message
from nurture.tasks.scheduling import run_periodic, run_tick
from nurture.tasks.sending import send_messages
from tests.conftest import ats_post, auth_headers, running_app

STEP = {"delay": "PT0S", "template": "rejection_followup"}


@pytest.fixture
def system(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def campaign(app: Flask, **fields: Any) -> int:
    client = app.test_client()
    headers = auth_headers(app, "editor")
    body = {"name": "Drip", "entry": {"ats_event": "candidate.rejected"}, "steps": [STEP], **fields}
    answer = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert answer.status_code == 201, answer.json
    activated = client.post(f"/api/v1/campaigns/{answer.json['id']}/activate", headers=headers)
    assert activated.status_code == 200
    return answer.json["id"]


def rejected(app: Flask, **person: Any) -> dict:
    person.setdefault("email", "ana@example.org")
    answer = ats_post(app.test_client(), {"type": "candidate.rejected", "candidate": person})
    assert answer.status_code == 200, answer.json
    return answer.json


def enrolments(campaign_id: int | None = None) -> list[tuple[int, str, str]]:
    query = select(Enrolment.candidate_id, Enrolment.status, Enrolment.exit_reason).order_by(
        Enrolment.id
    )
    if campaign_id is not None:
        query = query.where(Enrolment.campaign_id == campaign_id)
    db.session.expire_all()
    return [tuple(row) for row in db.session.execute(query)]


def test_ats_entry_is_filtered_by_rejection_reason_and_stage(system: Flask) -> None:
    late = campaign(
        system,
        name="Late-stage near misses",
        entry_filter={"rejection_reasons": ["Another candidate"], "stages": ["final interview"]},
    )
    anyone = campaign(system, name="Everyone")
    hit = rejected(
        system, email="a@example.org", rejection_reason="another candidate", stage="Final interview"
    )
    wrong_stage = rejected(
        system, email="b@example.org", rejection_reason="Another candidate", stage="phone screen"
    )
    wrong_reason = rejected(
        system, email="c@example.org", rejection_reason="skills", stage="final interview"
    )
    assert hit["enrolled_campaign_ids"] == [late, anyone]
    assert wrong_stage["enrolled_campaign_ids"] == [anyone]
    assert wrong_reason["enrolled_campaign_ids"] == [anyone]


def test_an_entry_delay_comes_before_the_first_steps_own_delay(system: Flask, clock) -> None:
    campaign(
        system,
        entry_filter={"delay": "P2D"},
        steps=[{"delay": "PT6H", "template": "rejection_followup"}],
    )
    rejected(system)
    enrolment = db.session.scalar(select(Enrolment))
    assert enrolment.next_send_at == clock.now() + timedelta(days=2, hours=6)


@pytest.mark.parametrize(
    ("policy", "second", "after_exit"),
    [
        # What a second rejection does while enrolled, and after that enrolment ended.
        ("never", [(1, "active", "")], [(1, "exited", "reapplied")]),
        (
            "after_exit",
            [(1, "active", "")],
            [(1, "exited", "reapplied"), (1, "active", "")],
        ),
        (
            "always",
            [(1, "exited", "re-entered"), (1, "active", "")],
            [(1, "exited", "re-entered"), (1, "exited", "reapplied"), (1, "active", "")],
        ),
    ],
)
def test_reentry_policy(system: Flask, policy: str, second: list, after_exit: list) -> None:
    drip = campaign(system, reentry=policy, exit_on=["reapplied"])
    rejected(system)
    rejected(system)
    assert enrolments(drip) == second
    ats_post(
        system.test_client(),
        {"type": "candidate.reapplied", "candidate": {"email": "ana@example.org"}},
    )
    rejected(system)
    assert enrolments(drip) == after_exit


def test_the_api_default_lets_a_candidate_in_again_after_an_exit(system: Flask) -> None:
    client = system.test_client()
    answer = client.post(
        "/api/v1/campaigns",
        json={"name": "x", "steps": [STEP]},
        headers=auth_headers(system, "editor"),
    )
    assert answer.json["reentry"] == "after_exit" and answer.json["topic"] == "checkins"


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"entry_filter": {"stages": "final"}}, "entry_filter.stages"),
        ({"entry_filter": {"delay": "two days"}}, "entry_filter.delay"),
        ({"entry_filter": {"colour": ["red"]}}, "entry_filter.colour"),
        ({"reentry": "sometimes"}, "reentry"),
        ({"topic": "sports"}, "topic"),
        ({"exit_on": ["moon"]}, "exit_on"),
        ({"send_window": {"start": "9"}}, "send_window.start"),
        ({"entry": {"segment_id": 999}}, "entry.segment_id"),
        ({"scheduled_at": "2026-03-10T09:00:00Z"}, "scheduled_at"),
    ],
)
def test_bad_timing_fields_are_422_naming_the_field(system: Flask, fields: dict, bad: str) -> None:
    body = {"name": "x", "steps": [STEP], **fields}
    answer = system.test_client().post(
        "/api/v1/campaigns", json=body, headers=auth_headers(system, "editor")
    )
    assert answer.status_code == 422, answer.json
    assert bad in answer.json["error"]["fields"]


def test_entry_filters_are_stored_clean() -> None:
    given = {"rejection_reasons": [" Skills ", "skills"], "delay": "p1d"}
    assert parse(EntryFilter, given).stored() == {"rejection_reasons": ["skills"], "delay": "P1D"}
    with pytest.raises(ValidationError):
        parse(EntryFilter, ["skills"])


def test_topic_off_skips_the_mail_and_ends_only_that_enrolment(
    system: Flask, smtp: SmtpCapture
) -> None:
    checkins = campaign(system, name="Check-ins", topic="checkins")
    alerts = campaign(
        system, name="Alerts", topic="job_alerts", steps=[{"delay": "P1D", "template": "job_alert"}]
    )
    rejected(system)
    candidate = db.session.scalar(select(Candidate))
    candidate.topics = {"checkins": False, "job_alerts": True}
    db.session.commit()
    ana = candidate.id
    create_due_messages(db.session, system.extensions["nurture.clock"].now())
    ids = list(db.session.scalars(select(Message.id)))
    assert send_messages(ids) == {"skipped": 1}
    assert smtp.messages == []
    message = db.session.scalar(select(Message))
    assert (message.state, message.error) == ("skipped", "topic off")
    assert enrolments(checkins) == [(ana, "exited", "topic off")]
    assert enrolments(alerts) == [(ana, "active", "")]
    # A candidate who turned a topic off is not enrolled into its campaigns at all.
    campaign(system, name="More check-ins", topic="checkins")
    assert rejected(system)["enrolled_campaign_ids"] == [alerts]


def segment(name: str, rules: dict) -> int:
    from nurture.core.audience.segments import save_segment

    now = current_app.extensions["nurture.clock"].now()
    row = save_segment(db.session, name, rules, now)
    db.session.commit()
    return row.id


def add(app: Flask, **person: Any) -> int:
    answer = app.test_client().post(
        "/api/v1/candidates", json=person, headers=auth_headers(app, "editor")
    )
    assert answer.status_code in (200, 201), answer.json
    return answer.json["id"]


def test_segment_entry_happens_when_candidates_change(system: Flask, smtp: SmtpCapture) -> None:
    designers = segment("Designers", {"all": [{"field": "role", "op": "eq", "value": "Designer"}]})
    drip = campaign(
        system,
        entry={"segment_id": designers},
        exit_on=["left_segment"],
        steps=[STEP, {"delay": "P3D", "template": "checkin_3_months"}],
    )
    # Saved through the API: they are in (or out) at once, before any scheduler pass.
    bo = add(system, email="bo@example.org", role="Designer")
    cy = add(system, email="cy@example.org", role="Designer")
    add(system, email="di@example.org", role="Engineer")
    assert sorted(row[0] for row in enrolments(drip)) == [bo, cy]
    assert run_tick(system).created == 2
    # The pass enrols nobody twice.
    run_tick(system)
    assert len(enrolments(drip)) == 2
    # Cy changes role: out at once.
    add(system, email="cy@example.org", role="Engineer")
    assert enrolments(drip) == [(bo, "active", ""), (cy, "exited", "left_segment")]
    # Di becomes a designer: in at once.
    di = add(system, email="di@example.org", role="Designer")
    assert (di, "active", "") in enrolments(drip)


def test_segment_entry_on_the_scheduler_pass_catches_what_time_changes(
    system: Flask, smtp: SmtpCapture, clock
) -> None:
    """ "Added more than 7 days ago" changes with nobody saving anything: the periodic pass sees
    it (every minute), and the next send pass mails the newcomer."""
    settled = segment(
        "Settled", {"all": [{"field": "created_at", "op": "older_than_days", "value": 7}]}
    )
    drip = campaign(system, entry={"segment_id": settled})
    bo = add(system, email="bo@example.org", role="Designer")
    run_periodic(system, {})
    assert enrolments(drip) == []
    clock.advance(timedelta(days=8))
    run_tick(system)
    assert enrolments(drip) == []  # the send pass does not run segment queries
    assert "segment entries and exits" in run_periodic(system, {})
    assert enrolments(drip) == [(bo, "active", "")]
    assert run_tick(system).created == 1


def test_an_import_enrols_its_rows_into_segment_campaigns(system: Flask) -> None:
    designers = segment("Designers", {"all": [{"field": "role", "op": "eq", "value": "Designer"}]})
    drip = campaign(system, entry={"segment_id": designers})
    csv = (
        "email,first_name,role\n"
        "ana@example.org,Ana,Designer\n"
        "ben@example.org,Ben,Engineer\n"
        "cat@example.org,Cat,Designer\n"
    )
    answer = system.test_client().post(
        "/api/v1/candidates/import",
        data={"file": (io.BytesIO(csv.encode()), "people.csv")},
        headers=auth_headers(system, "editor"),
    )
    assert answer.status_code in (200, 201, 202), answer.json
    with system.app_context():
        emails = db.session.scalars(
            select(Candidate.email)
            .join(Enrolment, Enrolment.candidate_id == Candidate.id)
            .where(Enrolment.campaign_id == drip)
            .order_by(Candidate.email)
        ).all()
    assert emails == ["ana@example.org", "cat@example.org"]


def test_replies_and_bounces_end_drips(system: Flask, clock) -> None:
    drip = campaign(system)
    rejected(system, email="a@example.org")
    rejected(system, email="b@example.org")
    rejected(system, email="c@example.org")
    a, b, c = db.session.scalars(select(Candidate).order_by(Candidate.id)).all()
    # A reply from before the enrolment does not count; one after it does.
    a.last_replied_at = clock.now() + timedelta(minutes=5)
    c.last_replied_at = clock.now() - timedelta(days=30)
    b.status = "bounced"
    db.session.commit()
    counts = run_entries(db.session, clock.now())
    assert (counts["replied"], counts["unmailable"]) == (1, 1)
    assert enrolments(drip) == [
        (a.id, "exited", "replied"),
        (b.id, "exited", "bounced"),
        (c.id, "active", ""),
    ]
