"""The compliance gate: no campaign goes out without a sender identity and a postal address."""

from __future__ import annotations

import pytest

from nurture.core.campaigns.service import set_status
from nurture.core.compliance.identity import extra_headers, missing_settings
from nurture.core.errors import Conflict
from nurture.extensions import db
from nurture.models import Campaign, Step
from tests.conftest import auth_headers, make_app

DRIP = {
    "name": "Follow-up",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [{"delay": "PT0S", "template": "rejection_followup"}],
}


@pytest.fixture
def bare_app(sqlite_url, clock):
    app = make_app(sqlite_url, clock, POSTAL_ADDRESS="", SENDER_EMAIL="  ")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_activation_is_refused_naming_what_is_missing(bare_app) -> None:
    client = bare_app.test_client()
    headers = auth_headers(bare_app, "admin")
    campaign_id = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]

    answer = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=headers)

    assert answer.status_code == 409
    message = answer.json["error"]["message"]
    assert "postal address (NURTURE_POSTAL_ADDRESS)" in message
    assert "sender email (NURTURE_SENDER_EMAIL)" in message
    assert "company name" not in message
    assert db.session.get(Campaign, campaign_id).status == "draft"


def test_activation_works_once_the_settings_are_there(app, client, auth) -> None:
    campaign_id = client.post("/api/v1/campaigns", json=DRIP, headers=auth).json["id"]
    answer = client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=auth)
    assert answer.status_code == 200


def test_settings_can_be_passed_outside_an_app(app, clock) -> None:
    campaign = Campaign(
        name="c", status="draft", steps=[Step(position=0, template="rejection_followup")]
    )
    with pytest.raises(Conflict, match="postal address"):
        set_status(
            db.session,
            campaign,
            "active",
            clock.now(),
            settings={
                "COMPANY_NAME": "Acme",
                "SENDER_EMAIL": "t@example.com",
                "POSTAL_ADDRESS": "",
            },
        )


def test_missing_settings() -> None:
    good = {"COMPANY_NAME": "Acme", "POSTAL_ADDRESS": "1 Main St", "SENDER_EMAIL": "t@acme.test"}
    assert missing_settings(good) == []
    assert missing_settings({**good, "SENDER_EMAIL": "nobody"}) == [
        "a valid sender email (NURTURE_SENDER_EMAIL is 'nobody')"
    ]
    assert len(missing_settings({})) == 3


def test_precedence_bulk_only_on_broadcasts() -> None:
    assert extra_headers(Campaign(kind="broadcast")) == {"Precedence": "bulk"}
    assert extra_headers(Campaign(kind="drip")) == {}
    assert extra_headers(Campaign(kind="job_alert")) == {}
