"""Talent-pool health, by API on both databases, through the scheduler's periodic pass: who gets
no human open for the cold period gets the re-engagement drip (machine opens do not count), a
last call if they did not open it, and after the sunset period is no longer mailed, with the
reason; saying yes again or a new application brings them back; the daily snapshots give the
pool's active / cold / sunset shares over time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Message
from nurture.tasks.scheduling import run_periodic, run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import ats_post, auth_headers, make_app
from tests.support.workers import drain

HUMAN = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"}
PROXY = {"User-Agent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) (via ggpht.com GoogleImageProxy)"}
PEOPLE = ("ana", "bo", "cy", "dee")


@pytest.fixture
def system(database_url, clock, redis_url, smtp) -> Iterator[Flask]:
    app = make_app(database_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, FREQUENCY_CAP={})
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def _pass(app: Flask) -> None:
    """The scheduler's periodic pass (pool health among it), then the send pass and a worker."""
    run_periodic(app, {})
    run_tick(app)
    drain(app)


def _mails_to(smtp, name: str) -> list:  # noqa: ANN001
    return [m.as_email() for m in smtp.messages if m.as_email()["To"] == f"{name}@example.org"]


def _open(client, tokens: Tokens, email: str, headers: dict, base: str) -> None:  # noqa: ANN001
    """Fetch the open pixel of the newest mail to ``email``."""
    message = db.session.scalars(
        select(Message).join(Candidate).where(Candidate.email == email).order_by(Message.id.desc())
    ).first()
    client.get(tokens.open_url(message.id).replace(base, ""), headers=headers)


def test_cold_candidates_are_asked_then_sunset_and_come_back(system: Flask, clock, smtp) -> None:
    client = system.test_client()
    base, tokens = system.config["BASE_URL"], Tokens.from_config(system.config)
    viewer, editor, admin = (auth_headers(system, r) for r in ("viewer", "editor", "admin"))

    # The policy: bad values are named, editors may not change it.
    for bad, name in (
        ({"cold_after_days": 3, "sunset_after_months": 3}, "cold_after_days"),
        ({"cold_after_days": 60, "sunset_after_months": 1}, "sunset_after_months"),
        ({"cold_after_days": "30", "sunset_after_months": 3}, "cold_after_days"),
    ):
        refused = client.put("/api/v1/pool/policy", json=bad, headers=admin)
        assert refused.status_code == 422 and name in refused.json["error"]["fields"], bad
    policy = {"cold_after_days": 30, "sunset_after_months": 3}
    assert client.put("/api/v1/pool/policy", json=policy, headers=editor).status_code == 403
    assert client.put("/api/v1/pool/policy", json=policy, headers=admin).json == policy

    for name in PEOPLE:
        client.post(
            "/api/v1/candidates",
            json={"email": f"{name}@example.org", "first_name": name.title(), "tags": ["network"]},
            headers=editor,
        )
    checkin = client.post(
        "/api/v1/campaigns",
        json={"name": "Welcome", "entry": {"tag": "network"},
              "steps": [{"template": "talent_network_invite"}]},
        headers=editor,
    ).json["id"]  # fmt: skip
    client.post(f"/api/v1/campaigns/{checkin}/activate", headers=editor)
    _pass(system)
    assert len(smtp.wait_for(4)) == 4
    clock.advance(timedelta(days=5))
    _open(client, tokens, "ana@example.org", HUMAN, base)
    _open(client, tokens, "bo@example.org", PROXY, base)  # Gmail's proxy, not Bo

    # Day 31: no human open for 30 days: Bo, Cy and Dee are cold and asked.
    clock.advance(timedelta(days=26))
    _pass(system)
    smtp.wait_for(7)
    for name in ("bo", "cy", "dee"):
        [ask] = _mails_to(smtp, name)[1:]
        assert ask["Subject"] == "Still interested in hearing from Acme Talent?"
    assert len(_mails_to(smtp, "ana")) == 1
    now = client.get("/api/v1/pool", headers=viewer).json["now"]
    assert (now["active"], now["cold"], now["sunset"]) == (1, 3, 0)
    assert now["shares"] == {"active": 25.0, "cold": 75.0, "sunset": 0.0}

    # Cy says yes from the mail's button (a page, then one more click): no longer cold.
    [cy_ask] = _mails_to(smtp, "cy")[1:]
    link = re.search(r"(https?://\S+/k/\S+)", cy_ask.get_body(("plain",)).get_content())[1]
    page = client.get(link.replace(base, ""), headers=HUMAN)
    token = link.rsplit("/", 1)[1]
    form_token = re.search(
        r'action="/p/' + re.escape(token) + r'/stay">\s*<input type="hidden" name="form_token" '
        r'value="([^"]+)"', page.text,
    )[1]  # fmt: skip
    assert client.post(f"/p/{token}/stay", data={"form_token": form_token}).status_code == 303
    _open(client, tokens, "bo@example.org", PROXY, base)  # the proxy again: still no human open

    # Two weeks on: the last call goes to those who did not open the first (Bo and Dee), not Cy.
    clock.advance(timedelta(days=15))
    _pass(system)
    smtp.wait_for(9)
    for name in ("bo", "dee"):
        assert (
            _mails_to(smtp, name)[-1]["Subject"]
            == "Last call: shall we keep writing to you, " + name.title() + "?"
        )  # noqa: E501
    assert len(_mails_to(smtp, "cy")) == 2

    # Three months without engagement: Bo and Dee are sunset, with the reason, and not mailed.
    clock.advance(timedelta(days=48))
    _pass(system)
    ids = {c.email.split("@")[0]: c.id for c in db.session.scalars(select(Candidate))}
    bo = client.get(f"/api/v1/candidates/{ids['bo']}", headers=viewer).json
    assert bo["status"] == "sunset"
    assert bo["sunset"]["reason"] == "no open, click or reply in 3 months"
    pool = client.get("/api/v1/pool?days=120", headers=viewer).json
    assert (pool["now"]["sunset"], pool["now"]["shares"]["sunset"]) == (2, 50.0)
    # One snapshot a day the pass ran, oldest first: the shares over time.
    shares = [
        (h["day"], h["shares"]["active"], h["shares"]["cold"], h["shares"]["sunset"])
        for h in pool["history"]
    ]
    assert shares == [
        ("2026-03-02", 100.0, 0.0, 0.0),
        ("2026-04-02", 25.0, 75.0, 0.0),  # Bo, Cy, Dee cold
        ("2026-04-17", 25.0, 75.0, 0.0),  # Cy said yes; Ana's open is 41 days old
        ("2026-06-04", 0.0, 50.0, 50.0),  # Bo and Dee sunset
    ]
    sent_before = len(smtp.messages)
    news = client.post(
        "/api/v1/campaigns",
        json={"name": "News", "entry": {"tag": "news"}, "steps": [{"template": "newsletter"}]},
        headers=editor,
    ).json["id"]
    client.post(f"/api/v1/campaigns/{news}/activate", headers=editor)
    for name in PEOPLE:
        client.post(
            "/api/v1/candidates",
            json={"email": f"{name}@example.org", "tags": ["network", "news"]},
            headers=editor,
        )
    _pass(system)
    newsletter = [m.as_email()["To"] for m in smtp.wait_for(sent_before + 2)[sent_before:]]
    assert sorted(newsletter) == ["ana@example.org", "cy@example.org"]

    # Coming back: Dee says yes from her old mail's button, Bo applies again.
    [dee_ask] = _mails_to(smtp, "dee")[1:2]
    link = re.search(r"(https?://\S+/k/\S+)", dee_ask.get_body(("plain",)).get_content())[1]
    page = client.get(link.replace(base, ""), headers=HUMAN)
    assert "We stopped writing to you" in page.text
    token = link.rsplit("/", 1)[1]
    form_token = re.search(r'/stay">\s*<input type="hidden" name="form_token" value="([^"]+)"',
                           page.text)[1]  # fmt: skip
    client.post(f"/p/{token}/stay", data={"form_token": form_token})
    assert ats_post(
        client, {"type": "candidate.reapplied", "candidate": {"email": "bo@example.org"}}
    )
    for name, why in (("dee", "re-engaged"), ("bo", "new application")):
        back = client.get(f"/api/v1/candidates/{ids[name]}", headers=viewer).json
        assert (back["status"], back["sunset"]["reason"]) == ("active", f"came back ({why})")
    run_periodic(system, {})  # the day's last pass writes the day's snapshot
    history = client.get("/api/v1/pool?days=120", headers=viewer).json["history"]
    assert [(h["day"], h["active"], h["cold"], h["sunset"]) for h in history[-1:]] == [
        ("2026-06-04", 2, 2, 0)
    ]
    assert client.get("/api/v1/pool?days=0", headers=viewer).status_code == 422
