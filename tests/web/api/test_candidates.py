"""The candidates API: create, update by email, validation, profile, erasure, auth and errors."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.addresses import is_suppressed
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.delivery.sending import send_messages
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Message, MessageState
from nurture.tasks.sending import sender_for
from tests.conftest import api_token, ats_post

ANA = {
    "email": "Ana.Lima@Example.ORG",
    "first_name": "Ana",
    "last_name": "Lima",
    "timezone": "Europe/Lisbon",
    "role": "Staff Engineer",
    "stage": "final interview",
    "rejection_reason": "another candidate had more Kubernetes experience",
    "strengths": "calm, careful debugging under pressure",
    "skills": ["Python", "Go"],
    "tags": ["Silver-Medalist"],
    "recruiter_email": "Jordan@Acme.example.com",
    "consent": {"basis": "legitimate_interest", "source": "ats", "at": "2026-02-27T10:00:00+01:00"},
}

DRIP = {
    "name": "Silver medalists",
    "kind": "drip",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {
            "delay": "PT1H",
            "template": "rejection_followup",
            "subject": "{{ candidate.first_name }}, thank you from {{ company.name }}",
        },
        {"delay": "P3D", "template": "talent_network_invite"},
    ],
}


def bearer(app: Flask, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(app, role)}"}


def candidate_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Candidate))


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    error = response.json["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error


def active_drip(client, headers) -> int:
    created = client.post("/api/v1/campaigns", json=DRIP, headers=headers)
    assert created.status_code == 201, created.json
    campaign_id = created.json["id"]
    activated = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=headers)
    assert activated.json["status"] == "active"
    return campaign_id


# --- create and update ---------------------------------------------------------------------------


def test_create_answers_201_with_id_and_normalised_fields(client, auth) -> None:
    answer = client.post("/api/v1/candidates", json=ANA, headers=auth)

    assert answer.status_code == 201
    body = answer.json
    assert isinstance(body["id"], int)
    assert body["email"] == "ana.lima@example.org"
    assert body["recruiter_email"] == "jordan@acme.example.com"
    assert body["first_name"] == "Ana" and body["last_name"] == "Lima"
    assert body["timezone"] == "Europe/Lisbon"
    assert body["skills"] == ["go", "python"]
    assert body["tags"] == ["silver-medalist"]
    assert body["status"] == "active"
    assert body["consent"]["basis"] == "legitimate_interest"
    assert body["consent"]["at"] == "2026-02-27T09:00:00+00:00"  # the same instant, in UTC
    stored = db.session.get(Candidate, body["id"])
    assert stored is not None and stored.email == "ana.lima@example.org"
    assert candidate_count() == 1


def test_same_email_in_another_case_updates_the_same_candidate(client, auth) -> None:
    first = client.post("/api/v1/candidates", json=ANA, headers=auth)
    assert first.status_code == 201

    again = client.post(
        "/api/v1/candidates",
        json={"email": "ANA.LIMA@example.org", "first_name": "Ana Maria", "skills": ["Rust"]},
        headers=auth,
    )

    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    assert again.json["email"] == "ana.lima@example.org"
    assert again.json["first_name"] == "Ana Maria"
    assert again.json["skills"] == ["rust"]
    # Fields the update did not mention keep their values.
    assert again.json["role"] == "Staff Engineer"
    assert again.json["last_name"] == "Lima"
    assert candidate_count() == 1


# --- validation ----------------------------------------------------------------------------------

BAD_FIELDS = {
    "email": "not-an-address",
    "timezone": "Mars/Olympus_Mons",
    "skills": "python, go",
    "recruiter_email": "jordan at acme",
    "consent": {"basis": "consent", "source": "form", "at": "2026-02-27T10:00:00"},
}


def test_every_bad_field_is_reported_by_name_and_nothing_is_written(client, auth) -> None:
    answer = client.post(
        "/api/v1/candidates", json={**BAD_FIELDS, "first_name": "Ana"}, headers=auth
    )

    error = assert_json_error(answer, 422)
    assert set(error["fields"]) == {"email", "timezone", "skills", "recruiter_email", "consent.at"}
    assert all(isinstance(v, str) and v for v in error["fields"].values())
    assert candidate_count() == 0


@pytest.mark.parametrize(
    ("field", "value", "reported"),
    [
        ("email", "ana@", "email"),
        ("timezone", "Europe/Atlantis", "timezone"),
        ("skills", "python", "skills"),
        ("skills", ["python", 3], "skills"),
        ("recruiter_email", "no-at-sign", "recruiter_email"),
        ("consent", {"at": "2026-02-27T10:00:00"}, "consent.at"),
        ("consent", {"at": "yesterday"}, "consent.at"),
    ],
)
def test_a_bad_update_is_refused_and_leaves_the_candidate_unchanged(
    client, auth, field, value, reported
) -> None:
    created = client.post("/api/v1/candidates", json=ANA, headers=auth)
    before = client.get(f"/api/v1/candidates/{created.json['id']}", headers=auth).json

    body = {"email": "ana.lima@example.org", "first_name": "Changed", field: value}
    if field == "email":
        body = {"email": value, "first_name": "Changed"}
    answer = client.post("/api/v1/candidates", json=body, headers=auth)

    error = assert_json_error(answer, 422)
    assert set(error["fields"]) == {reported}
    after = client.get(f"/api/v1/candidates/{created.json['id']}", headers=auth).json
    assert after == before
    assert candidate_count() == 1


def test_a_body_that_is_not_a_json_object_is_a_json_400(client, auth) -> None:
    for answer in (
        client.post("/api/v1/candidates", data="email=a@b.c", headers=auth),
        client.post("/api/v1/candidates", json=["ana@example.org"], headers=auth),
    ):
        assert_json_error(answer, 400)
    assert candidate_count() == 0


# --- profile -------------------------------------------------------------------------------------


def test_get_returns_profile_enrolments_and_timeline(app, client, auth, clock) -> None:
    campaign_id = active_drip(client, auth)
    rejected = ats_post(client, {"type": "candidate.rejected", "candidate": ANA})
    candidate_id = rejected.json["candidate_id"]
    clock.advance(timedelta(hours=1))
    created, _ = create_due_messages(db.session, clock.now())
    assert created == 1

    profile = client.get(f"/api/v1/candidates/{candidate_id}", headers=auth)

    assert profile.status_code == 200
    body = profile.json
    assert body["id"] == candidate_id
    assert body["email"] == "ana.lima@example.org"
    assert body["role"] == "Staff Engineer"
    assert body["status"] == "active"
    assert [(e["campaign_id"], e["status"]) for e in body["enrolments"]] == [
        (campaign_id, "active")
    ]
    message_id = db.session.scalar(select(Message.id).where(Message.candidate_id == candidate_id))
    assert [(item["type"], item["message_id"]) for item in body["timeline"]] == [
        ("message.queued", message_id)
    ]


def test_viewer_can_read_a_candidate(app, client, auth) -> None:
    created = client.post("/api/v1/candidates", json=ANA, headers=auth)

    answer = client.get(f"/api/v1/candidates/{created.json['id']}", headers=bearer(app, "viewer"))

    assert answer.status_code == 200
    assert answer.json["email"] == "ana.lima@example.org"


# --- erasure -------------------------------------------------------------------------------------


def test_delete_erases_personal_data_and_suppresses_the_address(client, auth) -> None:
    campaign_id = active_drip(client, auth)
    rejected = ats_post(client, {"type": "candidate.rejected", "candidate": ANA})
    candidate_id = rejected.json["candidate_id"]

    erased = client.delete(f"/api/v1/candidates/{candidate_id}", headers=auth)

    assert erased.status_code == 200
    assert erased.json["status"] == "erased"
    body = client.get(f"/api/v1/candidates/{candidate_id}", headers=auth).json
    assert body["status"] == "erased"
    for field in (
        "first_name",
        "last_name",
        "timezone",
        "role",
        "stage",
        "rejection_reason",
        "strengths",
        "recruiter_email",
    ):
        assert not body[field], field
    assert body["skills"] == [] and body["tags"] == []
    assert body["consent"]["at"] is None
    text = json.dumps(body).lower()
    assert "ana.lima" not in text and "lima" not in text
    assert [(e["campaign_id"], e["status"]) for e in body["enrolments"]] == [
        (campaign_id, "exited")
    ]
    assert (
        db.session.scalar(select(Candidate.id).where(Candidate.email.ilike("%ana.lima%"))) is None
    )
    assert is_suppressed(db.session, "ana.lima@example.org")


def test_an_erased_address_is_not_enrolled_again_by_a_later_rejection(client, auth) -> None:
    campaign_id = active_drip(client, auth)
    rejected = ats_post(client, {"type": "candidate.rejected", "candidate": ANA})
    assert rejected.json["enrolled_campaign_ids"] == [campaign_id]
    client.delete(f"/api/v1/candidates/{rejected.json['candidate_id']}", headers=auth)

    again = ats_post(
        client,
        {"type": "candidate.rejected", "candidate": {**ANA, "email": "ANA.LIMA@example.org"}},
    )

    assert again.status_code == 200
    assert again.json["enrolled_campaign_ids"] == []
    active = db.session.scalars(
        select(Enrolment).where(Enrolment.campaign_id == campaign_id, Enrolment.status == "active")
    ).all()
    assert active == []


def test_erasure_leaves_no_address_or_name_in_sent_messages(app, client, auth, clock, smtp) -> None:
    app.config["SMTP_URL"] = smtp.url  # this test sends one real mail before the erasure
    active_drip(client, auth)
    rejected = ats_post(client, {"type": "candidate.rejected", "candidate": ANA})
    candidate_id = rejected.json["candidate_id"]
    clock.advance(timedelta(hours=1))
    create_due_messages(db.session, clock.now())
    ids = list(db.session.scalars(select(Message.id).where(Message.candidate_id == candidate_id)))
    sender = sender_for(app)
    try:
        outcome = send_messages(db.session, sender, clock.now, ids)
    finally:
        sender.transport.close()
    assert outcome == {MessageState.SENT: 1}
    assert len(smtp.wait_for(1)) == 1

    client.delete(f"/api/v1/candidates/{candidate_id}", headers=auth)

    def personal(value: str) -> bool:
        lowered = value.lower()
        return "ana.lima@example.org" in lowered or re.search(r"\bana\b", lowered) is not None

    leftovers = [
        {"to_address": m.to_address, "subject": m.subject}
        for m in db.session.scalars(select(Message).where(Message.candidate_id == candidate_id))
    ]
    assert len(leftovers) == 1
    assert not [row for row in leftovers if any(personal(v) for v in row.values())], leftovers
    timeline = client.get(f"/api/v1/candidates/{candidate_id}", headers=auth).json["timeline"]
    assert not personal(json.dumps(timeline)), timeline


def test_only_an_admin_may_erase(app, client, auth) -> None:
    created = client.post("/api/v1/candidates", json=ANA, headers=auth)
    candidate_id = created.json["id"]

    answer = client.delete(f"/api/v1/candidates/{candidate_id}", headers=bearer(app, "editor"))

    assert_json_error(answer, 403)
    body = client.get(f"/api/v1/candidates/{candidate_id}", headers=auth).json
    assert body["status"] == "active" and body["email"] == "ana.lima@example.org"
    assert not is_suppressed(db.session, "ana.lima@example.org")


# --- auth ----------------------------------------------------------------------------------------


def test_no_token_is_a_json_401(client) -> None:
    assert_json_error(client.post("/api/v1/candidates", json=ANA), 401)
    assert_json_error(client.get("/api/v1/candidates/1"), 401)
    assert candidate_count() == 0


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nrt_not-a-token-we-issued",
        "Bearer ",
        "Token nrt_not-a-token-we-issued",
    ],
)
def test_a_bad_token_is_a_json_401(client, header) -> None:
    answer = client.post("/api/v1/candidates", json=ANA, headers={"Authorization": header})

    assert_json_error(answer, 401)
    assert candidate_count() == 0


def test_a_real_token_sent_with_another_scheme_is_refused(app, client) -> None:
    token = api_token(app, "admin")

    answer = client.post(
        "/api/v1/candidates", json=ANA, headers={"Authorization": f"Basic {token}"}
    )

    assert_json_error(answer, 401)
    assert candidate_count() == 0


def test_a_viewer_can_read_but_not_create(app, client, auth) -> None:
    viewer = bearer(app, "viewer")

    answer = client.post("/api/v1/candidates", json=ANA, headers=viewer)

    assert_json_error(answer, 403)
    assert candidate_count() == 0
    created = client.post("/api/v1/candidates", json=ANA, headers=auth)
    assert client.get(f"/api/v1/candidates/{created.json['id']}", headers=viewer).status_code == 200


def test_an_editor_may_create_and_update(app, client) -> None:
    editor = bearer(app, "editor")

    assert client.post("/api/v1/candidates", json=ANA, headers=editor).status_code == 201
    assert client.post("/api/v1/candidates", json=ANA, headers=editor).status_code == 200


# --- errors are JSON -----------------------------------------------------------------------------


def test_unknown_candidate_is_a_json_404(client, auth) -> None:
    assert_json_error(client.get("/api/v1/candidates/4242", headers=auth), 404)
    assert_json_error(client.delete("/api/v1/candidates/4242", headers=auth), 404)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/no-such-thing", 404),
        ("post", "/api/v1/candidates/7/nope", 404),
        ("get", "/api/v1/candidates/not-a-number", 404),
        ("get", "/api/v2/candidates", 404),
        ("get", "/api/v1/candidates", 405),
        ("put", "/api/v1/candidates/1", 405),
    ],
)
def test_errors_under_api_are_json_never_html(client, auth, method, path, status) -> None:
    answer = getattr(client, method)(path, headers=auth)

    assert_json_error(answer, status)
    assert "<html" not in answer.get_data(as_text=True).lower()
