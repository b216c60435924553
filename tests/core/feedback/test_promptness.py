"""Rejection promptness, by API on both databases: time from each ATS rejection to the first
mail (p50/p95 overall, per campaign, per recruiter, nearest rank), the target, and the rejected
candidates who wait past it with the reason for each (no campaign, campaign paused, queue stuck).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from nurture.extensions import db
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import ats_post, auth_headers, make_app
from tests.support.workers import drain

JORDAN = {"recruiter_name": "Jordan Lee", "recruiter_email": "jordan@acme.example.com"}
SAM = {"recruiter_name": "Sam Park", "recruiter_email": "sam@acme.example.com"}


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text as {(sample name, labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def system(database_url, clock, redis_url, smtp) -> Iterator[Flask]:
    app = make_app(database_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, FREQUENCY_CAP={})
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def _campaign(client, headers, name: str, stages: list[str]) -> int:  # noqa: ANN001
    campaign = client.post(
        "/api/v1/campaigns",
        json={
            "name": name,
            "entry": {"ats_event": "candidate.rejected"},
            "entry_filter": {"stages": stages},
            "steps": [{"delay": "PT2H", "template": "rejection_followup"}],
        },
        headers=headers,
    )
    assert campaign.status_code == 201, campaign.json
    client.post(f"/api/v1/campaigns/{campaign.json['id']}/activate", headers=headers)
    return campaign.json["id"]


def _reject(client, email: str, stage: str, recruiter: dict) -> None:  # noqa: ANN001
    person = {"email": email, "first_name": email.split("@")[0].title(), "stage": stage}
    assert ats_post(client, {"type": "candidate.rejected", "candidate": {**person, **recruiter}})


def test_time_to_first_mail_per_campaign_and_recruiter_and_who_waits_why(
    system: Flask, clock
) -> None:
    client = system.test_client()
    editor, viewer, admin = (auth_headers(system, r) for r in ("editor", "viewer", "admin"))
    followup = _campaign(client, editor, "Rejection follow-up", ["onsite"])
    paused = _campaign(client, editor, "Take-home follow-up", ["take-home"])

    _reject(client, "ana@example.org", "onsite", JORDAN)
    _reject(client, "dan@example.org", "phone screen", JORDAN)  # no campaign takes phone screens
    _reject(client, "eve@example.org", "take-home", SAM)
    client.post(f"/api/v1/campaigns/{paused}/pause", headers=editor)
    clock.advance(timedelta(hours=1))
    _reject(client, "bo@example.org", "onsite", JORDAN)
    clock.advance(timedelta(minutes=30))
    _reject(client, "chen@example.org", "onsite", SAM)
    clock.advance(timedelta(hours=2, minutes=30))  # four hours after the first rejection
    run_tick(system)
    drain(system)
    _reject(client, "fay@example.org", "onsite", SAM)
    clock.advance(timedelta(hours=2))
    run_tick(system)  # Fay's mail is queued, but no worker ever takes it
    clock.advance(timedelta(hours=54))  # 60 hours after the first rejection

    report = client.get("/api/v1/promptness", headers=viewer).json
    assert report["target_hours"] == 48
    overall = report["overall"]
    # Waits of 4 h (Ana), 3 h (Bo) and 2.5 h (Chen): nearest-rank p50 is 3 h, p95 4 h.
    assert (overall["rejections"], overall["mailed"]) == (6, 3)
    assert (overall["p50_hours"], overall["p95_hours"]) == (3.0, 4.0)
    assert (overall["within_target"], overall["waiting_over_target"]) == (3, 3)
    assert overall["within_target_percent"] == 50.0

    campaigns = {row["name"]: row for row in report["campaigns"]}
    assert campaigns["Rejection follow-up"]["rejections"] == 4
    assert campaigns["Rejection follow-up"]["p95_hours"] == 4.0
    assert campaigns["Rejection follow-up"]["waiting_over_target"] == 1
    assert campaigns["No campaign matched"]["waiting_over_target"] == 1
    assert campaigns["Take-home follow-up"]["waiting_over_target"] == 1
    recruiters = {row["name"]: row for row in report["recruiters"]}
    assert (recruiters["Jordan Lee"]["p50_hours"], recruiters["Jordan Lee"]["p95_hours"]) == (
        3.0, 4.0,
    )  # fmt: skip
    assert recruiters["Sam Park"]["p50_hours"] == 2.5
    assert recruiters["Sam Park"]["waiting_over_target"] == 2

    waiting = report["waiting"]
    assert waiting["count"] == 3
    reasons = {row["email"]: row["reason"] for row in waiting["candidates"]}
    assert reasons == {
        "dan@example.org": "no_campaign",
        "eve@example.org": "campaign_paused",
        "fay@example.org": "stuck",
    }
    assert waiting["candidates"][0]["waited_hours"] == 60.0  # the longest wait first

    # The gauges, read as Prometheus reads them: with a token under /api/v1, and in the ops
    # scrape beside every other gauge.
    for answer in (client.get("/api/v1/metrics", headers=viewer), client.get("/metrics")):
        assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
        samples = _samples(answer.text)
        assert samples["nurture_rejected_waiting_over_target", ()] == 3
        assert samples["nurture_rejection_first_mail_hours", (("quantile", "0.95"),)] == 4
        assert samples["nurture_rejection_target_hours", ()] == 48

    # The team moves its target: nobody has waited 72 hours.
    for bad, field_problem in (({"hours": "soon"}, "number"), ({"hours": 0}, "between")):
        refused = client.put("/api/v1/promptness/target", json=bad, headers=admin)
        assert (
            refused.status_code == 422 and field_problem in refused.json["error"]["fields"]["hours"]
        )
    assert (
        client.put("/api/v1/promptness/target", json={"hours": 72}, headers=editor).status_code
        == 403
    )
    assert client.put("/api/v1/promptness/target", json={"hours": 72}, headers=admin).json == {
        "target_hours": 72
    }
    report = client.get("/api/v1/promptness", headers=viewer).json
    assert (report["target_hours"], report["waiting"]["count"]) == (72, 0)
    assert client.get("/api/v1/promptness?days=0", headers=viewer).status_code == 422
    assert followup
