"""A/B subject tests in Chromium: the page shows each variant's candidates mailed, unique human
opens and rate, the p-value of the best against the runner-up, and the winner once decided."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Message
from nurture.tasks.scheduling import run_periodic, run_tick
from nurture.workflows.candidates import save_candidate
from tests.conftest import auth_headers
from tests.support.workers import drain
from tests.web.admin.conftest import login, screenshot

HUMAN = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"}


def _work(app) -> None:  # noqa: ANN001
    run_periodic(app, {})
    run_tick(app)
    drain(app)


def test_the_page_shows_the_figures_and_the_winner(page, live_app, clock, smtp) -> None:
    client = live_app.test_client()
    editor = auth_headers(live_app, "editor")
    created = client.post(
        "/api/v1/campaigns",
        json={"name": "Network invite", "entry": {"tag": "network"}, "steps": [{
            "template": "talent_network_invite",
            "ab_test": {"variants": [
                {"subject": "News from the Acme talent network"},
                {"subject": "{{ candidate.first_name }}, your seat in our talent network",
                 "preheader": "Roles that fit you, a few times a year."}],
                "sample_percent": 100, "decide_after": "", "min_sample": 20}}]},
        headers=editor,
    )  # fmt: skip
    assert created.status_code == 201, created.json
    client.post(f"/api/v1/campaigns/{created.json['id']}/activate", headers=editor)
    for i in range(60):
        save_candidate(
            db.session,
            {"email": f"p{i}@example.org", "first_name": f"P{i}", "tags": ["network"]},
            clock.now(),
        )
    db.session.commit()
    run_tick(live_app)
    drain(live_app)
    smtp.wait_for(60)
    sent = db.session.execute(select(Message.id, Message.ab_variant)).all()
    db.session.rollback()
    clock.advance(timedelta(minutes=30))
    tokens, base = Tokens.from_config(live_app.config), live_app.config["BASE_URL"]
    for index, (message_id, variant) in enumerate(sent):
        if index % 10 < (7 if variant == 1 else 2):
            client.get(tokens.open_url(message_id).replace(base, ""), headers=HUMAN)
    db.session.remove()

    login(page, "viewer")
    page.click("nav >> text=A/B tests")
    page.wait_for_url("**/admin/ab-tests")
    test = page.locator(".ab-test").first
    expect(test.locator("[data-verdict]")).to_have_text("Running")
    expect(test.locator(".ab-verdict")).to_contain_text("B leads significantly")
    _work(live_app)  # each variant reached 20 candidates: decided
    db.session.remove()
    page.reload()
    expect(test.locator("[data-verdict]")).to_have_text("Winner: B")
    expect(test.locator("tr.winner")).to_have_attribute("data-variant", "B")
    expect(test.locator(".ab-verdict")).to_contain_text("B won on unique human opens")
    expect(test.locator("[data-variant=B]")).to_contain_text("Roles that fit you")
    screenshot(page, "admin-ab-tests")
