"""The campaigns API: create a drip, refuse bad steps field by field, status changes, stats."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Campaign, Step
from tests.conftest import api_token

DRIP: dict[str, Any] = {
    "name": "Silver medalists",
    "kind": "drip",
    "entry": {"ats_event": "candidate.rejected"},
    "sender": {"name": "Acme Talent", "email": "Talent@Acme.example.com"},
    "steps": [
        {"delay": "PT30S", "template": "rejection_followup"},
        {"delay": "P3D", "template": "talent_network_invite", "condition": "previous_not_opened"},
        {
            "delay": "P7D",
            "subject": "{{ candidate.first_name }}, checking in",
            "html": "<p>Hi {{ candidate.first_name }},</p>\n<p>Still looking?</p>\n",
        },
    ],
}


def drip(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(DRIP)
    body.update(changes)
    return body


def with_step(index: int, **changes: Any) -> dict[str, Any]:
    body = drip()
    step = body["steps"][index]
    for key, value in changes.items():
        if value is None:
            step.pop(key, None)
        else:
            step[key] = value
    return body


def stored() -> tuple[int, int]:
    campaigns = db.session.scalar(select(func.count()).select_from(Campaign))
    steps = db.session.scalar(select(func.count()).select_from(Step))
    return campaigns, steps


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.content_type
    error = response.json["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    return error


def bearer(app: Flask, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(app, role)}"}


# --- create --------------------------------------------------------------------------------------


def test_create_a_drip_answers_with_its_steps(client, auth) -> None:
    answer = client.post("/api/v1/campaigns", json=DRIP, headers=auth)

    assert answer.status_code == 201, answer.json
    body = answer.json
    assert isinstance(body["id"], int)
    assert body["name"] == "Silver medalists"
    assert body["kind"] == "drip"
    assert body["status"] == "draft"
    assert body["entry"] == {"ats_event": "candidate.rejected"}
    assert body["sender"]["email"] == "talent@acme.example.com"
    assert [(s["position"], s["delay"], s["template"], s["condition"]) for s in body["steps"]] == [
        (0, "PT30S", "rejection_followup", ""),
        (1, "P3D", "talent_network_invite", "previous_not_opened"),
        (2, "P7D", "", ""),
    ]
    assert body["steps"][2]["html"] == DRIP["steps"][2]["html"]
    assert body["steps"][2]["subject"] == DRIP["steps"][2]["subject"]
    assert stored() == (1, 3)

    again = client.get(f"/api/v1/campaigns/{body['id']}", headers=auth)
    assert again.status_code == 200
    assert again.json == body


def test_delays_are_stored_as_the_time_they_stand_for(client, auth) -> None:
    answer = client.post("/api/v1/campaigns", json=DRIP, headers=auth)

    campaign = db.session.get(Campaign, answer.json["id"])
    assert [s.delay_seconds for s in campaign.steps] == [30, 3 * 86400, 7 * 86400]


def test_a_viewer_cannot_create_a_campaign(app, client) -> None:
    answer = client.post("/api/v1/campaigns", json=DRIP, headers=bearer(app, "viewer"))

    assert_json_error(answer, 403)
    assert stored() == (0, 0)


def test_creating_a_campaign_needs_a_token(client) -> None:
    assert_json_error(client.post("/api/v1/campaigns", json=DRIP), 401)
    assert stored() == (0, 0)


# --- validation ----------------------------------------------------------------------------------

SYNTAX_ERROR_ON_LINE_3 = (
    "<p>Hi {{ candidate.first_name }},</p>\n<p>Good news</p>\n<p>{% if %}</p>\n"
)
LAYOUT_CHILD_ERROR_ON_LINE_5 = (
    '{% extends "layout.html" %}\n'
    "{% block subject %}News from {{ company.name }}{% endblock %}\n"
    "{% block content %}\n"
    "<p>Hi {{ candidate.first_name }},</p>\n"
    "<p>{{ candidate.role }</p>\n"
    "{% endblock %}\n"
)


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        (with_step(1, delay="3 days"), "steps[1].delay", None),
        (with_step(0, delay="P1M"), "steps[0].delay", None),
        (with_step(2, delay="P1Y"), "steps[2].delay", None),
        (with_step(1, delay="-P1D"), "steps[1].delay", None),
        (with_step(1, template="no_such_template"), "steps[1].template", None),
        (with_step(0, html="<p>Hi</p>"), "steps[0].template", None),
        (with_step(2, html=None, template=None), "steps[2].template", None),
        (with_step(0, condition="previous_opened"), "steps[0].condition", None),
        (with_step(1, condition="if_they_feel_like_it"), "steps[1].condition", None),
        (with_step(2, html=SYNTAX_ERROR_ON_LINE_3), "steps[2].html", "line 3"),
        (with_step(2, subject=None), "steps[2].subject", None),
        (drip(steps=[]), "steps", None),
        (drip(name="  "), "name", None),
        (drip(kind="carrier_pigeon"), "kind", None),
        (drip(entry={"ats_event": "candidate.hired"}), "entry.ats_event", None),
        (drip(sender={"email": "talent at acme"}), "sender.email", None),
    ],
)
def test_bad_input_is_reported_per_field_and_nothing_is_stored(client, auth, body, field, hint):
    answer = client.post("/api/v1/campaigns", json=body, headers=auth)

    error = assert_json_error(answer, 422)
    assert list(error["fields"]) == [field]
    if hint:
        assert hint in error["fields"][field]
    assert stored() == (0, 0)


def test_all_problems_are_reported_at_once(client, auth) -> None:
    body = drip(name="")
    body["steps"][0]["condition"] = "previous_clicked"
    body["steps"][1]["delay"] = "3 days"
    body["steps"][2]["html"] = SYNTAX_ERROR_ON_LINE_3

    error = assert_json_error(client.post("/api/v1/campaigns", json=body, headers=auth), 422)

    assert set(error["fields"]) == {
        "name",
        "steps[0].condition",
        "steps[1].delay",
        "steps[2].html",
    }
    assert stored() == (0, 0)


def test_a_syntax_error_in_html_that_extends_the_layout_names_the_line_the_user_wrote(
    client, auth
) -> None:
    body = with_step(2, html=LAYOUT_CHILD_ERROR_ON_LINE_5, subject=None)

    error = assert_json_error(client.post("/api/v1/campaigns", json=body, headers=auth), 422)

    assert list(error["fields"]) == ["steps[2].html"]
    assert re.match(r"line 5\b", error["fields"]["steps[2].html"]), error["fields"]
    assert stored() == (0, 0)


@pytest.mark.parametrize(
    "body",
    [
        drip(kind=["drip"]),
        drip(kind={"drip": True}),
    ],
)
def test_a_kind_of_the_wrong_type_is_a_422_not_a_crash(client, auth, body) -> None:
    error = assert_json_error(client.post("/api/v1/campaigns", json=body, headers=auth), 422)

    assert list(error["fields"]) == ["kind"]
    assert stored() == (0, 0)


# --- status --------------------------------------------------------------------------------------


def test_activate_pause_and_resume(client, auth) -> None:
    campaign_id = client.post("/api/v1/campaigns", json=DRIP, headers=auth).json["id"]

    activated = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=auth)
    assert activated.status_code == 200 and activated.json["status"] == "active"
    paused = client.post(f"/api/v1/campaigns/{campaign_id}/pause", headers=auth)
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    resumed = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=auth)
    assert resumed.status_code == 200 and resumed.json["status"] == "active"

    assert db.session.get(Campaign, campaign_id).status == "active"
    assert client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).json["status"] == "active"


def test_pausing_a_draft_is_a_json_409_and_changes_nothing(client, auth) -> None:
    campaign_id = client.post("/api/v1/campaigns", json=DRIP, headers=auth).json["id"]

    answer = client.post(f"/api/v1/campaigns/{campaign_id}/pause", headers=auth)

    assert_json_error(answer, 409)
    assert client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).json["status"] == "draft"


def test_a_viewer_cannot_change_a_campaign_status(app, client, auth) -> None:
    campaign_id = client.post("/api/v1/campaigns", json=DRIP, headers=auth).json["id"]

    answer = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=bearer(app, "viewer"))

    assert_json_error(answer, 403)
    assert client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).json["status"] == "draft"


@pytest.mark.parametrize("action", ["activate", "pause", "stats"])
def test_unknown_campaign_is_a_json_404(client, auth, action) -> None:
    method = client.get if action == "stats" else client.post

    assert_json_error(method(f"/api/v1/campaigns/999/{action}", headers=auth), 404)


def test_unknown_campaign_get_is_a_json_404(client, auth) -> None:
    assert_json_error(client.get("/api/v1/campaigns/999", headers=auth), 404)


# --- stats ---------------------------------------------------------------------------------------


def test_stats_of_a_fresh_campaign_are_zero_for_each_step(app, client, auth) -> None:
    created = client.post("/api/v1/campaigns", json=DRIP, headers=auth).json

    answer = client.get(f"/api/v1/campaigns/{created['id']}/stats", headers=bearer(app, "viewer"))

    assert answer.status_code == 200
    assert answer.json["campaign_id"] == created["id"]
    steps = answer.json["steps"]
    assert [row["step_id"] for row in steps] == [s["id"] for s in created["steps"]]
    counters = ("sent", "opened", "clicked", "unsubscribed", "bounced", "failed")
    assert [{name: row[name] for name in counters} for row in steps] == [
        dict.fromkeys(counters, 0) for _ in created["steps"]
    ]
