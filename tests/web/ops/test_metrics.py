"""/metrics: the names operators alert on, counters that move with real sends, and who may read."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from nurture import create_app
from nurture.config import ConfigError, TestConfig
from nurture.extensions import db
from nurture.models import Candidate, Message, MessageState
from tests.conftest import api_token, ats_post, running_app
from tests.e2e.test_drip import DRIP
from tests.web.ops.conftest import BIN, Process, process_env, worker

SENDER = {
    "SENDER_EMAIL": "talent@acme.example.com",
    "COMPANY_NAME": "Acme",
    "POSTAL_ADDRESS": "Acme Inc, 1 Main St, Springfield",
}
# What dashboards and alerts are written against: renaming one breaks them.
NAMES = {
    "nurture_mails",
    "nurture_smtp_send_seconds",
    "nurture_smtp_errors",
    "nurture_mail_delay_seconds",
    "nurture_rejection_to_first_mail_seconds",
    "nurture_send_batch_seconds",
    "nurture_tracking_hits",
    "nurture_scheduler_pass_seconds",
    "nurture_scheduler_pass_failures",
    "nurture_queue_messages",
    "nurture_queue_oldest_due_seconds",
    "nurture_scheduler_lag_seconds",
    "nurture_rq_jobs",
    "nurture_rq_workers",
    "nurture_smtp_breaker_open",
    "nurture_component_up",
}


def scrape(client, **headers: str) -> dict[tuple[str, tuple], float]:
    """GET /metrics and parse it as Prometheus does: {(sample name, labels): value}."""
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def families(client) -> set[str]:
    text = client.get("/metrics").get_data(as_text=True)
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_names_every_series_operators_alert_on(sqlite_url, clock, redis_url, smtp) -> None:
    with running_app(sqlite_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url) as app:
        assert NAMES <= families(app.test_client())


def test_tracking_hits_are_counted_by_kind_and_outcome(app) -> None:
    client = app.test_client()
    before = scrape(client)
    rejected = ("nurture_tracking_hits_total", (("kind", "open"), ("outcome", "bad token")))
    assert client.get("/o/not-a-token.gif").status_code == 404
    assert client.get("/c/not-a-token").status_code == 404
    after = scrape(client)
    assert after[rejected] == before.get(rejected, 0) + 1
    click = ("nurture_tracking_hits_total", (("kind", "click"), ("outcome", "bad token")))
    assert after[click] == before.get(click, 0) + 1


def test_a_database_that_is_down_is_a_gauge_not_a_failed_scrape(app) -> None:
    # The app's Redis and SMTP point nowhere (the `app` fixture): the scrape still answers.
    samples = scrape(app.test_client())
    assert samples["nurture_component_up", (("component", "database"),)] == 1
    assert samples["nurture_component_up", (("component", "redis"),)] == 0


def test_counters_move_with_real_sends_through_a_worker_process(
    sqlite_url, clock, redis_url, smtp, tmp_path: Path
) -> None:
    """Scheduler and worker run as processes counting into the shared multiprocess directory."""
    shared = tmp_path / "metrics"
    with running_app(
        sqlite_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, METRICS_DIR=str(shared),
        **SENDER,
    ) as app:  # fmt: skip
        env = process_env(app, clock, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(shared))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {api_token(app, 'editor')}"}
        campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
        client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
        for name in ("bounces", "sent", "leaves"):
            person = {"email": f"{name}@example.org", "first_name": name.title()}
            answer = ats_post(client, {"type": "candidate.rejected", "candidate": person})
            assert answer.status_code == 200, answer.json

        # An hour later the first step is due; the scheduler (a process) queues three mails.
        clock.advance(timedelta(hours=1))
        scheduler = Process([str(BIN / "nurture"), "scheduler", "--once"], env, tmp_path / "s.log")
        assert scheduler.process.wait(timeout=60) == 0, scheduler.output
        # No worker yet: ten minutes pass with the mails due.
        clock.advance(timedelta(minutes=10))
        waiting = scrape(client)
        assert waiting["nurture_queue_messages", (("state", "due"),)] == 3
        assert waiting["nurture_queue_oldest_due_seconds", ()] == 600
        assert waiting["nurture_rq_jobs", (("state", "queued"),)] == 1
        assert waiting["nurture_rq_workers", ()] == 0
        assert waiting["nurture_scheduler_pass_seconds_count", ()] == 1
        assert waiting["nurture_scheduler_last_pass_age_seconds", ()] == 600
        assert waiting["nurture_scheduler_last_pass_ok", ()] == 1

        # One candidate unsubscribes meanwhile; the relay refuses the first mail for good.
        db.session.execute(
            update(Candidate)
            .where(Candidate.email == "leaves@example.org")
            .values(status="unsubscribed")
        )
        db.session.commit()
        smtp.fail_next("550 5.1.1 mailbox unavailable")
        sender = worker(env, tmp_path / "worker.log")
        try:
            sender.wait_for(lambda: _settled(), "the worker to settle the three mails")
            samples = scrape(client)
            assert samples["nurture_rq_workers", ()] == 1
        finally:
            sender.stop()

    def mails(outcome: str, reason: str) -> float:
        return samples.get(("nurture_mails_total", (("outcome", outcome), ("reason", reason))), 0)

    assert mails("sent", "accepted") == 1
    assert mails("failed", "hard_bounce") == 1
    assert mails("skipped", "unsubscribed") == 1
    assert samples["nurture_smtp_errors_total", (("error_class", "5xx"),)] == 1
    assert samples["nurture_smtp_send_seconds_count", ()] == 2
    assert samples["nurture_send_batch_seconds_count", ()] == 1
    # Rejected at 09:00, first step an hour later, sent 10 minutes after it was due.
    assert samples["nurture_rejection_to_first_mail_seconds_count", ()] == 1
    assert samples["nurture_rejection_to_first_mail_seconds_sum", ()] == 4200
    assert samples["nurture_mail_delay_seconds_sum", ()] == 600
    assert samples["nurture_queue_messages", (("state", "due"),)] == 0
    assert samples["nurture_queue_oldest_due_seconds", ()] == 0
    assert len(smtp.messages) == 1


def _settled() -> bool:
    pending = db.session.scalar(
        select(func.count()).where(Message.state.in_([MessageState.QUEUED, MessageState.SENDING]))
    )
    db.session.remove()
    return pending == 0


def test_the_token_is_required_when_one_is_set(sqlite_url, clock) -> None:
    with running_app(sqlite_url, clock, METRICS_TOKEN="scrape-s3cret") as app:
        client = app.test_client()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-s3cret"}):
            answer = client.get("/metrics", headers=headers)
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            error = answer.get_json()["error"]
            assert error["code"] == "unauthorized" and "NURTURE_METRICS_TOKEN" in error["message"]
        # With the token, any address will do (Prometheus on another machine).
        scrape(
            client,
            Authorization="Bearer scrape-s3cret",
            **{"X-Forwarded-For": "203.0.113.9"},
        )


def test_without_a_token_only_private_clients_may_read(sqlite_url, clock) -> None:
    with running_app(sqlite_url, clock) as app:
        client = app.test_client()
        scrape(client)  # the test client is 127.0.0.1
        inside = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.2.3.4"})
        assert inside.status_code == 200
        outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert outside.status_code == 403
        assert "NURTURE_METRICS_ALLOW" in outside.get_json()["error"]["message"]
        # Through the TLS proxy the peer is 127.0.0.1, but the client is anyone: refused.
        proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403


def test_the_allowed_networks_are_configurable(sqlite_url, clock) -> None:
    with running_app(sqlite_url, clock, METRICS_ALLOW="192.0.2.0/24, 2001:db8::/32") as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 403  # loopback is no longer in the list
        for address in ("192.0.2.7", "2001:db8::1"):
            allowed = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
            assert allowed.status_code == 200
    with running_app(sqlite_url, clock, METRICS_ALLOW=[]) as app:
        refused = app.test_client().get("/metrics")
        assert refused.status_code == 403 and "is off" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize("setting", ["10.0.0.0/33", "not-a-network", ["private", "10.0.0.1/x"]])
def test_a_mistyped_network_stops_the_app_naming_the_setting(setting, clock) -> None:
    with pytest.raises(ConfigError, match="NURTURE_METRICS_ALLOW"):
        create_app(TestConfig, CLOCK=str(clock.path), METRICS_ALLOW=setting)


def test_the_scrape_speaks_openmetrics_when_asked(app) -> None:
    answer = app.test_client().get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert answer.content_type.startswith("application/openmetrics-text")
    assert answer.get_data(as_text=True).rstrip().endswith("# EOF")


assert sys.executable  # the processes above run this interpreter's nurture
