"""Outbound webhooks to the ATS, end to end: an unsubscribe, a rating and an erasure each reach a
real HTTP receiver on 127.0.0.1 as a signed POST, through the scheduler's periodic list, real
Redis and a real RQ worker; a receiver that fails is retried with growing pauses."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import select

from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Message, WebhookDelivery
from nurture.tasks.scheduling import run_periodic, run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import ats_post, auth_headers, make_app
from tests.support.receiver import Receiver
from tests.support.workers import drain

SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver([503, 503, 200]) as server:
        yield server


def _system(url: str, clock, redis_url: str, smtp, receiver: Receiver):  # noqa: ANN001, ANN202
    app = make_app(
        url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, ATS_WEBHOOK_URL=receiver.url,
        ATS_WEBHOOK_SECRET=SECRET, FREQUENCY_CAP={},
    )  # fmt: skip
    return app


@pytest.fixture
def system(database_url, clock, redis_url, smtp, receiver) -> Iterator[Flask]:
    app = _system(database_url, clock, redis_url, smtp, receiver)
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def work(app: Flask) -> None:
    """One scheduler pass (sends and the periodic list), then a real worker until idle."""
    run_tick(app)
    run_periodic(app, {})
    drain(app)


def _verify(request) -> dict:  # noqa: ANN001
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Nurture-Signature"] == expected
    return json.loads(request.body)


def test_an_unsubscribe_reaches_the_ats_signed_and_is_retried_with_backoff(
    system: Flask, clock, receiver: Receiver
) -> None:
    client = system.test_client()
    candidate = client.post(
        "/api/v1/candidates",
        json={"email": "ana@example.org", "first_name": "Ana"},
        headers=auth_headers(system, "editor"),
    ).json
    token = Tokens.from_config(system.config).unsubscribe_url(candidate["id"], None)
    path = token.replace(system.config["BASE_URL"], "")
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    work(system)
    [first] = receiver.requests
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("pending", 1, 503)
    assert delivery.next_attempt_at == clock.now() + timedelta(seconds=30)

    work(system)  # not due yet: the receiver hears nothing
    assert len(receiver.requests) == 1
    clock.advance(timedelta(seconds=30))
    work(system)
    assert len(receiver.requests) == 2
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert delivery.next_attempt_at == clock.now() + timedelta(seconds=60)  # doubled
    clock.advance(timedelta(seconds=60))
    work(system)
    assert len(receiver.requests) == 3
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)

    bodies = [_verify(request) for request in receiver.requests]
    assert bodies[0] == bodies[1] == bodies[2]  # the same bytes, the same event id every time
    event = bodies[0]
    assert event["type"] == "candidate.unsubscribed"
    assert event["candidate"]["email"] == "ana@example.org"
    assert event["candidate"]["status"] == "unsubscribed"
    assert {r.headers["X-Nurture-Event-Id"] for r in receiver.requests} == {event["id"]}
    assert first.headers["X-Nurture-Event"] == "candidate.unsubscribed"
    assert first.path == "/hooks/nurture"

    log = client.get("/api/v1/webhooks/deliveries", headers=auth_headers(system, "admin")).json
    [row] = log["deliveries"]
    assert (row["state"], row["attempts"], row["event_type"]) == (
        "delivered", 3, "candidate.unsubscribed",
    )  # fmt: skip


def test_a_lost_job_is_delivered_once_the_claim_goes_stale(
    sqlite_url, clock, redis_url, smtp, receiver: Receiver
) -> None:
    receiver.script = []
    app = _system(sqlite_url, clock, redis_url, smtp, receiver)
    with app.app_context():
        client = app.test_client()
        editor = auth_headers(app, "editor")
        candidate = client.post(
            "/api/v1/candidates", json={"email": "bo@example.org"}, headers=editor
        ).json
        client.delete(f"/api/v1/candidates/{candidate['id']}", headers=auth_headers(app, "admin"))
        run_periodic(app, {})  # claimed and enqueued ...
        with Redis.from_url(redis_url) as conn:
            conn.flushall()  # ... and the job lost with Redis
        work(app)
        assert receiver.requests == []
        clock.advance(timedelta(minutes=11))
        work(app)
        [request] = receiver.requests
        event = _verify(request)
        assert event["type"] == "candidate.erased"
        assert event["candidate"]["email"] == "bo@example.org"  # the ATS can find them
        # Once delivered, the log keeps no address of an erased candidate.
        stored = db.session.scalars(select(WebhookDelivery)).one()
        assert "bo@example.org" not in stored.body and "[erased]" in stored.body
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def test_endpoints_get_only_the_events_they_subscribe_to(
    sqlite_url, clock, redis_url, smtp, receiver: Receiver
) -> None:
    receiver.script = []
    app = _system(sqlite_url, clock, redis_url, smtp, receiver)
    with Receiver() as ratings_only, app.app_context():
        client = app.test_client()
        admin = auth_headers(app, "admin")
        created = client.post(
            "/api/v1/webhooks/endpoints",
            json={"url": ratings_only.url, "events": ["candidate.rated"], "description": "BI"},
            headers=admin,
        )
        assert created.status_code == 201
        secret = created.json["secret"]
        listed = client.get("/api/v1/webhooks/endpoints", headers=admin).json
        assert "secret" not in listed["endpoints"][0]  # shown once, when created

        editor = auth_headers(app, "editor")
        campaign = client.post(
            "/api/v1/campaigns",
            json={
                "name": "Silver medalists",
                "entry": {"ats_event": "candidate.rejected"},
                "steps": [{"delay": "PT0S", "template": "rejection_followup"}],
            },
            headers=editor,
        ).json["id"]
        client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)
        ats_post(client, {"type": "candidate.rejected", "candidate": {"email": "chen@example.org"}})
        work(app)
        [mail] = smtp.wait_for(1)
        assert db.session.scalar(select(WebhookDelivery.id)) is None  # no event yet
        sent = db.session.scalars(select(Message)).one()
        rating = Tokens.from_config(app.config).rating_url(sent.id, 4)
        answer = client.get(
            rating.replace(app.config["BASE_URL"], ""), headers={"User-Agent": "Mozilla/5.0"}
        )
        assert answer.status_code == 200
        work(app)
        [rated] = ratings_only.requests
        expected = "sha256=" + hmac.new(secret.encode(), rated.body, hashlib.sha256).hexdigest()
        assert rated.headers["X-Nurture-Signature"] == expected  # signed with its own secret
        body = json.loads(rated.body)
        assert (body["type"], body["data"]["rating"], body["data"]["campaign_id"]) == (
            "candidate.rated", 4, campaign,
        )  # fmt: skip
        # The configured endpoint takes every event: it got the rating too.
        assert [json.loads(r.body)["type"] for r in receiver.requests] == ["candidate.rated"]
        assert mail.as_email()["To"] == "chen@example.org"
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def test_bad_endpoints_are_refused_field_by_field_and_change_nothing(app: Flask) -> None:
    client = app.test_client()
    admin = auth_headers(app, "admin")
    bad = client.post(
        "/api/v1/webhooks/endpoints",
        json={"url": "ftp://ats.example.com", "events": ["candidate.hired"], "secret": "short"},
        headers=admin,
    )
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"url", "events", "secret"}
    assert "http" in bad.json["error"]["fields"]["url"]
    assert client.post(
        "/api/v1/webhooks/endpoints", json={"url": "https://ats.example.com/h"},
        headers=auth_headers(app, "editor"),
    ).status_code == 403  # fmt: skip
    assert client.get("/api/v1/webhooks/endpoints", headers=admin).json["endpoints"] == []
    missing = client.post("/api/v1/webhooks/deliveries/99/retry", headers=admin)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
