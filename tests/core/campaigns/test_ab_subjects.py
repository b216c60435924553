"""A/B subjects, by API on both databases with real Redis, RQ and SMTP: a step tries two subject
lines (and preview texts) on a sample of its mails while the rest wait; after the set time the
variant with the most unique human opens wins (machine opens left out) — when the two-proportion
z-test says the difference is significant — and goes to the rest; when it is not significant
there is no clear winner and variant A, the first, goes to the rest. The injected clock moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.core.campaigns.abtest import ab_group, two_proportion_z
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import HELD_FOR_AB_WINNER, Message, MessageState
from nurture.tasks.scheduling import run_periodic, run_tick
from nurture.tasks.sending import close_sender
from nurture.workflows.candidates import save_candidate
from tests.conftest import auth_headers, make_app
from tests.support.workers import drain

HUMAN = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"}
PROXY = {"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}
A = "News from the Acme talent network"
B = "{{ candidate.first_name }}, your seat in our talent network"


@pytest.fixture
def system(database_url, clock, redis_url, smtp) -> Iterator[Flask]:
    app = make_app(database_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, FREQUENCY_CAP={})
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def _work(app: Flask) -> None:
    run_periodic(app, {})
    run_tick(app)
    drain(app)


def _campaign(client, headers, name: str, tag: str, ab_test: dict) -> dict:  # noqa: ANN001
    return client.post(
        "/api/v1/campaigns",
        json={
            "name": name,
            "entry": {"tag": tag},
            "steps": [{"template": "talent_network_invite", "ab_test": ab_test}],
        },
        headers=headers,
    )


def _people(tag: str, count: int, now) -> None:  # noqa: ANN001
    for i in range(count):
        save_candidate(
            db.session,
            {"email": f"{tag}{i}@example.org", "first_name": f"P{i}", "tags": [tag]},
            now,
        )
    db.session.commit()


def test_the_z_test_and_the_split() -> None:
    # 30 of 50 against 10 of 50: z = 4.08, p = 0.000045 (a textbook pooled two-proportion test).
    z, p = two_proportion_z(30, 50, 10, 50)
    assert (round(z, 2), round(p, 6)) == (4.08, 0.000045)
    assert two_proportion_z(11, 50, 10, 50)[1] > 0.05
    assert two_proportion_z(0, 0, 3, 10) == (0.0, 1.0)
    groups = [ab_group(i, 20, 2) for i in range(1, 10_001)]
    assert 1900 < sum(g is not None for g in groups) < 2100  # a 20 % sample
    assert abs(groups.count(0) - groups.count(1)) < 150  # split evenly between A and B


def test_the_winner_by_human_opens_goes_to_the_rest(system: Flask, clock, smtp) -> None:
    client = system.test_client()
    editor, viewer = auth_headers(system, "editor"), auth_headers(system, "viewer")
    good = {
        "variants": [
            {"subject": A},
            {"subject": B, "preheader": "Roles that fit you, a few times a year."},
        ],
        "sample_percent": 50,
        "metric": "opens",
        "decide_after": "PT4H",
    }
    # Every bad part is named, and nothing is created.
    for bad, where in (
        ({**good, "variants": [{"subject": A}]}, "steps[0].ab_test.variants"),
        ({**good, "variants": [{"subject": A}] * 5}, "steps[0].ab_test.variants"),
        ({**good, "variants": [{"subject": A}, {"subject": "{{ nope }}"}]},
         "steps[0].ab_test.variants[1].subject"),
        ({**good, "variants": [{"subject": A}, {"subject": " "}]},
         "steps[0].ab_test.variants[1].subject"),
        ({**good, "variants": [{"subject": A}, {"subject": B, "preheader": "{{ x }}"}]},
         "steps[0].ab_test.variants[1].preheader"),
        ({**good, "sample_percent": 1}, "steps[0].ab_test.sample_percent"),
        ({**good, "metric": "replies"}, "steps[0].ab_test.metric"),
        ({**good, "decide_after": "", "min_sample": 0}, "steps[0].ab_test.decide_after"),
    ):  # fmt: skip
        refused = _campaign(client, editor, "Bad", "network", bad)
        assert refused.status_code == 422, bad
        assert where in refused.json["error"]["fields"], refused.json
    assert client.get("/api/v1/campaigns/1", headers=viewer).status_code == 404

    created = _campaign(client, editor, "Network invite", "network", good)
    assert created.status_code == 201, created.json
    campaign = created.json["id"]
    [step] = client.get(f"/api/v1/campaigns/{campaign}", headers=viewer).json["steps"]
    assert step["ab_test"]["variants"][1]["subject"] == B
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)
    _people("network", 160, clock.now())
    _work(system)

    messages = db.session.execute(
        select(
            Message.id, Message.state, Message.error, Message.ab_variant, Message.to_address
        ).order_by(Message.id)
    ).all()
    db.session.rollback()  # no snapshot held while the tracking hits commit on their own
    tried = [m for m in messages if m.state == MessageState.SENT]
    waiting = [m for m in messages if m.state == MessageState.QUEUED]
    assert len(tried) + len(waiting) == 160 and 60 < len(tried) < 100
    assert {m.error for m in waiting} == {HELD_FOR_AB_WINNER}
    mails = smtp.wait_for(len(tried))
    by_address = {m.as_email()["To"]: m.as_email() for m in mails}
    for message in tried:
        mail = by_address[message.to_address]
        first = message.to_address.split("@")[0].replace("network", "P")
        expected = A if message.ab_variant == 0 else f"{first}, your seat in our talent network"
        assert mail["Subject"] == expected
        if message.ab_variant == 1:
            assert (
                "Roles that fit you, a few times a year." in mail.get_body(("html",)).get_content()
            )

    # B's readers open three times as often; a privacy proxy fetches every A mail's pixel.
    clock.advance(timedelta(minutes=20))  # people read later (a fetch at once is a machine's)
    tokens, base = Tokens.from_config(system.config), system.config["BASE_URL"]
    for index, message in enumerate(tried):
        pixel = tokens.open_url(message.id).replace(base, "")
        if message.ab_variant == 0:
            client.get(pixel, headers=PROXY)
        if index % 5 < (3 if message.ab_variant == 1 else 1):
            client.get(pixel, headers=HUMAN)
            client.get(pixel, headers=HUMAN)  # twice: unique candidates count once

    clock.advance(timedelta(hours=2, minutes=40))
    _work(system)
    running = client.get(f"/api/v1/campaigns/{campaign}/ab-tests", headers=viewer).json
    [test] = running["steps"]
    assert test["winner"] is None and test["waiting"] == len(waiting)
    a, b = test["variants"]
    assert a["sent"] + b["sent"] == len(tried)
    assert b["rate"] > 2 * a["rate"] and a["rate"] < 40  # the proxy's opens are not in A's
    assert test["significant"] and test["p_value"] < 0.05
    assert "no mail" not in test["rule"] and "goes to the rest when decided" in test["rule"]

    clock.advance(timedelta(hours=1, minutes=1))  # past the four hours
    _work(system)
    decided = client.get(f"/api/v1/campaigns/{campaign}/ab-tests", headers=viewer).json["steps"][0]
    assert decided["winner"] == 1 and decided["significant"], decided
    assert decided["rule"].startswith("B won on unique human opens (p ")
    assert decided["variants"] == test["variants"]  # the sample's figures, kept as decided
    rest = smtp.wait_for(160)[len(tried) :]
    assert {m.as_email()["Subject"].split(", ", 1)[1] for m in rest} == {
        "your seat in our talent network"
    }
    assert db.session.scalar(select(Message.id).where(Message.state != MessageState.SENT)) is None


def test_no_clear_winner_sends_variant_a(system: Flask, clock, smtp) -> None:
    client = system.test_client()
    editor, viewer = auth_headers(system, "editor"), auth_headers(system, "viewer")
    created = _campaign(
        client, editor, "Check-in", "pool",
        {"variants": [{"subject": A}, {"subject": "Hello from Acme"}, {"subject": "Acme news"}],
         "sample_percent": 100, "metric": "clicks", "decide_after": "", "min_sample": 10},
    )  # fmt: skip
    assert created.status_code == 201, created.json
    campaign = created.json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)
    _people("pool", 45, clock.now())
    _work(system)
    smtp.wait_for(45)  # everyone is in the sample
    _work(system)  # each variant reached 10: decided, with nobody's click to tell them apart
    [test] = client.get(f"/api/v1/campaigns/{campaign}/ab-tests", headers=viewer).json["steps"]
    assert (test["winner"], test["significant"], test["p_value"]) == (0, False, 1.0)
    assert test["rule"] == "no clear winner: variant A (the first) goes to the rest (p = 1.000)"
    # Who enters later gets variant A.
    save_candidate(db.session, {"email": "late@example.org", "tags": ["pool"]}, clock.now())
    db.session.commit()
    _work(system)
    [late] = [m for m in smtp.wait_for(46) if m.as_email()["To"] == "late@example.org"]
    assert late.as_email()["Subject"] == A
