"""The ATS webhook: signatures, rejections that enrol, hires and re-applications that end drips."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment
from tests.conftest import ATS_SECRET, ats_post

BO = {"email": "Bo.Berg@Example.org", "first_name": "Bo", "role": "Designer", "tags": ["silver"]}


def campaign(client, auth, entry: dict[str, str], status: str = "active", name: str = "") -> int:
    """A one-step drip with this entry rule, moved to ``status`` through the API."""
    body = {
        "name": name or f"{entry} {status}",
        "kind": "drip",
        "entry": entry,
        "steps": [{"delay": "PT1H", "template": "rejection_followup"}],
    }
    created = client.post("/api/v1/campaigns", json=body, headers=auth)
    assert created.status_code == 201, created.json
    campaign_id = created.json["id"]
    if status in ("active", "paused"):
        answer = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=auth)
        assert answer.json["status"] == "active"
    if status == "paused":
        answer = client.post(f"/api/v1/campaigns/{campaign_id}/pause", headers=auth)
        assert answer.json["status"] == "paused"
    return campaign_id


def enrolments(email: str | None = None) -> list[tuple[int, str, str]]:
    """(campaign id, status, exit reason) of every enrolment, optionally of one address."""
    query = select(Enrolment).order_by(Enrolment.id)
    if email is not None:
        query = query.join(Candidate).where(Candidate.email == email)
    return [(e.campaign_id, e.status, e.exit_reason) for e in db.session.scalars(query)]


def candidate_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Candidate))


def signed(body: bytes, secret: str = ATS_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def rejected(client, person: dict[str, Any] = BO):
    answer = ats_post(client, {"type": "candidate.rejected", "candidate": person})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    error = response.json["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error


# --- signatures ----------------------------------------------------------------------------------

PAYLOAD = {"type": "candidate.rejected", "candidate": BO}
BODY = json.dumps(PAYLOAD).encode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Nurture-Signature": ""},
        {"X-Nurture-Signature": signed(BODY, "not-the-secret")},
        {"X-Nurture-Signature": signed(BODY).removeprefix("sha256=")},
        {"X-Nurture-Signature": signed(BODY + b" ")},
        {"X-Nurture-Signature": "sha256=" + "0" * 64},
    ],
    ids=["missing", "empty", "other-secret", "no-prefix", "other-body", "zeros"],
)
def test_a_bad_or_missing_signature_is_a_401_and_creates_nothing(client, auth, headers) -> None:
    campaign(client, auth, {"ats_event": "candidate.rejected"})

    answer = client.post(
        "/api/v1/ats/events", data=BODY, content_type="application/json", headers=headers
    )

    assert_json_error(answer, 401)
    assert candidate_count() == 0
    assert enrolments() == []


def test_a_body_changed_after_signing_is_refused(client) -> None:
    signature = signed(BODY)
    tampered = json.dumps(
        {"type": "candidate.rejected", "candidate": {**BO, "email": "mallory@example.org"}}
    ).encode()

    answer = client.post(
        "/api/v1/ats/events",
        data=tampered,
        content_type="application/json",
        headers={"X-Nurture-Signature": signature},
    )

    assert_json_error(answer, 401)
    assert candidate_count() == 0


def test_the_webhook_needs_no_bearer_token(client) -> None:
    answer = ats_post(client, PAYLOAD)

    assert answer.status_code == 200
    assert answer.json["created"] is True
    assert candidate_count() == 1


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["candidate.ghosted", "", None, "CANDIDATE.REJECTED"])
def test_an_unknown_type_is_a_422_and_creates_nothing(client, kind) -> None:
    answer = ats_post(client, {"type": kind, "candidate": BO})

    error = assert_json_error(answer, 422)
    assert "type" in error["fields"]
    assert candidate_count() == 0


def test_a_bad_candidate_in_the_event_is_a_422_naming_the_field(client, auth) -> None:
    campaign(client, auth, {"ats_event": "candidate.rejected"})

    answer = ats_post(client, {"type": "candidate.rejected", "candidate": {"email": "bo@"}})

    error = assert_json_error(answer, 422)
    assert list(error["fields"]) == ["email"]
    assert candidate_count() == 0
    assert enrolments() == []


def test_an_event_without_a_candidate_is_a_422(client) -> None:
    error = assert_json_error(ats_post(client, {"type": "candidate.rejected"}), 422)

    assert "candidate" in error["fields"]
    assert candidate_count() == 0


# --- rejection enrols ----------------------------------------------------------------------------


def test_a_rejection_enrols_only_into_active_campaigns_entered_by_that_event(client, auth) -> None:
    wanted = campaign(client, auth, {"ats_event": "candidate.rejected"}, name="wanted")
    campaign(client, auth, {"ats_event": "candidate.rejected"}, status="draft", name="draft")
    campaign(client, auth, {"ats_event": "candidate.rejected"}, status="paused", name="paused")
    # Bo arrives with the tag "silver": adding a tag is that campaign's own way in.
    by_tag = campaign(client, auth, {"tag": "silver"}, name="by tag")
    also_wanted = campaign(client, auth, {"ats_event": "candidate.rejected"}, name="second")

    answer = rejected(client)

    assert sorted(answer.json["enrolled_campaign_ids"]) == sorted([wanted, also_wanted])
    assert answer.json["created"] is True
    assert sorted(enrolments("bo.berg@example.org")) == sorted(
        [(wanted, "active", ""), (by_tag, "active", ""), (also_wanted, "active", "")]
    )
    candidate = db.session.get(Candidate, answer.json["candidate_id"])
    assert candidate.email == "bo.berg@example.org" and candidate.role == "Designer"
    # The same tag again is not "added": a second rejection enrols nowhere new.
    assert rejected(client).json["enrolled_campaign_ids"] == [wanted, also_wanted]
    assert len(enrolments("bo.berg@example.org")) == 3


def test_a_rejection_with_no_matching_campaign_still_records_the_candidate(client, auth) -> None:
    campaign(client, auth, {"ats_event": "candidate.rejected"}, status="draft")

    answer = rejected(client)

    assert answer.json["enrolled_campaign_ids"] == []
    assert candidate_count() == 1
    assert enrolments() == []


def test_a_second_rejection_does_not_enrol_twice(client, auth) -> None:
    campaign_id = campaign(client, auth, {"ats_event": "candidate.rejected"})
    first = rejected(client)

    second = rejected(client, {**BO, "email": "BO.BERG@example.org", "stage": "onsite"})

    assert second.json["candidate_id"] == first.json["candidate_id"]
    assert second.json["created"] is False
    assert enrolments() == [(campaign_id, "active", "")]
    assert db.session.get(Candidate, first.json["candidate_id"]).stage == "onsite"


# --- hire and re-application end drips ----------------------------------------------------------


def test_a_hire_ends_every_drip_with_reason_hired(client, auth) -> None:
    first = campaign(client, auth, {"ats_event": "candidate.rejected"}, name="one")
    second = campaign(client, auth, {"ats_event": "candidate.rejected"}, name="two")
    rejected(client)
    rejected(client, {"email": "other@example.org"})

    answer = ats_post(client, {"type": "candidate.hired", "candidate": {"email": BO["email"]}})

    assert answer.status_code == 200
    assert answer.json["status"] == "hired"
    assert sorted(enrolments("bo.berg@example.org")) == sorted(
        [(first, "exited", "hired"), (second, "exited", "hired")]
    )
    # Someone else's drips are untouched.
    assert sorted(enrolments("other@example.org")) == sorted(
        [(first, "active", ""), (second, "active", "")]
    )
    assert db.session.get(Candidate, answer.json["candidate_id"]).status == "hired"


def test_a_reapplication_ends_every_drip_with_reason_reapplied(client, auth) -> None:
    campaign_id = campaign(client, auth, {"ats_event": "candidate.rejected"})
    rejected(client)

    answer = ats_post(
        client, {"type": "candidate.reapplied", "candidate": {"email": "bo.berg@EXAMPLE.org"}}
    )

    assert answer.status_code == 200
    assert answer.json["ended_enrolments"] == 1
    assert enrolments() == [(campaign_id, "exited", "reapplied")]
    assert db.session.get(Candidate, answer.json["candidate_id"]).status == "active"


def test_after_a_reapplication_a_new_rejection_enrols_again(client, auth) -> None:
    campaign_id = campaign(client, auth, {"ats_event": "candidate.rejected"})
    rejected(client)
    ats_post(client, {"type": "candidate.reapplied", "candidate": {"email": BO["email"]}})

    again = rejected(client)

    assert again.json["enrolled_campaign_ids"] == [campaign_id]
    assert enrolments() == [(campaign_id, "exited", "reapplied"), (campaign_id, "active", "")]


def test_a_reapplication_ends_only_drips_whose_exit_rules_say_so(client, auth) -> None:
    leaves = client.post(
        "/api/v1/campaigns",
        headers=auth,
        json={
            "name": "leaves",
            "entry": {"ats_event": "candidate.rejected"},
            "steps": [{"delay": "P1D", "template": "checkin_3_months"}],
        },
    ).json["id"]
    stays = client.post(
        "/api/v1/campaigns",
        headers=auth,
        json={
            "name": "stays",
            "entry": {"ats_event": "candidate.rejected"},
            "steps": [{"delay": "P1D", "template": "checkin_3_months"}],
        },
    ).json["id"]
    for campaign_id in (leaves, stays):
        client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=auth)
    db.session.get(Campaign, stays).exit_on = ["hired"]
    db.session.commit()
    rejected(client)
    answer = ats_post(client, {"type": "candidate.reapplied", "candidate": {"email": BO["email"]}})
    assert answer.json["ended_enrolments"] == 1
    assert sorted(enrolments("bo.berg@example.org")) == sorted(
        [(leaves, "exited", "reapplied"), (stays, "active", "")]
    )
