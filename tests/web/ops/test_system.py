"""The admin System page (in Chromium) and the retry of failed jobs it offers."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

from flask import Flask
from rq import Worker
from sqlalchemy import func, make_url, select

from nurture.core.delivery.circuit import _dump
from nurture.dev.embedded import free_port
from nurture.extensions import db
from nurture.models import Message, MessageState
from nurture.tasks import enqueue_send, get_redis, monitoring
from nurture.tasks.scheduling import run_tick
from nurture.tasks.stores import RedisStore
from nurture.tasks.telemetry import LAST_PASS_KEY, PassRecord
from tests.conftest import api_token, ats_post, running_app
from tests.e2e.test_drip import DRIP
from tests.web.admin.conftest import login, screenshot
from tests.web.ops.conftest import Process, process_env, worker


def drip_with_due_mail(app: Flask, clock, people: int = 2) -> int:
    """An active drip, ``people`` rejected candidates, and an hour later their first mail due."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(app, 'editor')}"}
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    for index in range(people):
        person = {"email": f"person{index}@example.org", "first_name": f"P{index}"}
        assert (
            ats_post(client, {"type": "candidate.rejected", "candidate": person}).status_code == 200
        )
    clock.advance(timedelta(hours=1))
    return campaign


def broken_worker(app: Flask, clock, tmp_path: Path) -> Process:
    """A worker on the wrong database (an old copy after a move, say): it is reachable, so the
    worker runs, but it has no messages table, so its send jobs fail."""
    source = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
    moved = tmp_path / "moved.db"
    with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(moved)) as copy:
        live.backup(copy)  # the write-ahead log too, which a file copy would miss
        copy.execute("DROP TABLE messages")
        copy.commit()
    env = process_env(app, clock, tmp_path, NURTURE_DATABASE_URL=f"sqlite:///{moved}")
    return worker(env, tmp_path / "broken-worker.log")


def wait_for_failed(app: Flask, process: Process, count: int) -> None:
    process.wait_for(
        lambda: monitoring.snapshot(app).failed_count >= count, f"{count} failed job(s)"
    )


def pending() -> int:
    count = db.session.scalar(
        select(func.count()).where(Message.state.in_([MessageState.QUEUED, MessageState.SENDING]))
    )
    db.session.remove()
    return count


def test_operators_see_the_system_and_retry_a_failed_job(
    page, live_app, live_server, clock, smtp, tmp_path: Path
) -> None:
    drip_with_due_mail(live_app, clock)
    assert run_tick(live_app).enqueued == 2  # one job with both ids
    broken = broken_worker(live_app, clock, tmp_path)
    try:
        wait_for_failed(live_app, broken, 1)
    finally:
        broken.stop()
    sender = worker(process_env(live_app, clock, tmp_path), tmp_path / "worker.log")
    try:
        sender.wait_for(
            lambda: len(Worker.all(connection=get_redis(live_app))) == 1, "the worker to register"
        )
        # A minute on (before the scheduler would hand the mails out again by itself).
        clock.advance(timedelta(minutes=1))
        assert run_tick(live_app).enqueued == 0
        login(page, "admin")
        page.click("nav >> text=System")
        page.wait_for_url("**/admin/system/")
        assert page.locator("#card-ready .n").inner_text() == "Ready"
        assert page.locator("#card-workers .n").inner_text() == "1"
        assert page.locator("#card-queue .n").inner_text() == "2"
        assert "oldest waiting 1 min" in page.locator("#card-queue").inner_text()
        assert page.locator("#card-breaker .n").inner_text() == "Sending"
        assert page.locator("#card-scheduler .n").inner_text() == "0 s"
        for component in ("database", "redis", "smtp"):
            row = page.locator(f"#readiness tr[data-component={component}]")
            assert "reachable" in row.inner_text() and "not" not in row.inner_text()
        assert page.locator("table.sys-workers tbody tr").count() == 1
        assert "idle" in page.locator("table.sys-workers").inner_text()
        failed = page.locator("table.sys-failed tbody tr")
        assert failed.count() == 1
        assert "send" in failed.inner_text() and "2 ids: 1, 2" in failed.inner_text()
        assert "OperationalError" in failed.inner_text()
        assert "never sends a mail twice" in page.locator("#failed").inner_text()
        screenshot(page, "system")

        page.check("table.sys-failed input[name=job_id]")
        page.click("text=Retry selected")
        page.wait_for_selector(".flash.success")
        assert "Handed 1 job back to the workers" in page.locator(".flash.success").inner_text()
        assert sorted(m.rcpt_tos[0] for m in smtp.wait_for(2)) == [
            "person0@example.org",
            "person1@example.org",
        ]
        sender.wait_for(lambda: pending() == 0, "the retried job to send")
        page.goto("/admin/system/")
        assert page.locator("#no-failed").inner_text() == "No failed jobs."
        assert page.locator("#card-queue .n").inner_text() == "0"
        assert page.locator("table.sys-workers td").nth(4).inner_text() == "1"  # jobs done
    finally:
        sender.stop()


def test_the_page_says_what_is_wrong_when_things_are_wrong(
    page, live_app, live_server, clock
) -> None:
    # The relay is gone, no worker runs, the breaker is open, the scheduler stopped long ago.
    live_app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    now = clock.now()
    redis = get_redis(live_app)
    RedisStore(redis).save(_dump("421 4.7.0 try again later", now, now + timedelta(minutes=5), 5))
    redis.set(
        LAST_PASS_KEY,
        PassRecord(now - timedelta(minutes=20), 0.05, True, host="app-1", pid=4242).dump(),
    )
    drip_with_due_mail(live_app, clock, people=1)
    with live_app.app_context():
        enqueue_send([[1]], live_app)

    login(page, "admin")
    page.goto("/admin/system/")
    assert page.locator("#card-ready .n").inner_text() == "Not ready"
    assert "smtp not reachable" in page.locator("#card-ready").inner_text()
    smtp_row = page.locator("#readiness tr[data-component=smtp]").inner_text()
    assert "not reachable" in smtp_row and "connection refused" in smtp_row
    assert page.locator("#card-workers .n").inner_text() == "0"
    assert "No worker is running" in page.locator("#no-workers").inner_text()
    assert page.locator("#card-breaker .n").inner_text() == "Paused"
    breaker = page.locator("#breaker").inner_text()
    assert "failed 5 times in a row" in breaker and "421 4.7.0 try again later" in breaker
    assert "is it running?" in page.locator("#card-scheduler").inner_text()
    assert re.search(r"No pass for \d+ (min|h)", page.locator("#scheduler").inner_text())
    screenshot(page, "system-trouble")


def test_only_admins_see_the_system_page(page, live_server) -> None:
    login(page, "editor")
    assert page.locator("nav >> text=System").count() == 0
    answer = page.goto("/admin/system/")
    assert answer.status == 403


def test_retrying_a_failed_send_job_sends_each_mail_once(
    sqlite_url, clock, redis_url, smtp, tmp_path: Path
) -> None:
    settings = {"REDIS_URL": redis_url, "SMTP_URL": smtp.url}
    with running_app(sqlite_url, clock, **settings) as app:
        drip_with_due_mail(app, clock, people=2)
        run_tick(app)
        sender = worker(process_env(app, clock, tmp_path), tmp_path / "worker.log")
        try:
            sender.wait_for(lambda: pending() == 0, "the first job")
        finally:
            sender.stop()
        assert len(smtp.messages) == 2
        # A duplicate of the job (a lost Redis, a requeue) fails on a broken worker...
        enqueue_send([[1, 2]], app)
        broken = broken_worker(app, clock, tmp_path)
        try:
            wait_for_failed(app, broken, 1)
        finally:
            broken.stop()
        # ...and the operator retries it: both mails were sent already, so nothing goes out.
        assert monitoring.retry_failed(None, app) == monitoring.RetryResult(requeued=1)
        sender = worker(process_env(app, clock, tmp_path), tmp_path / "worker2.log")
        try:
            sender.wait_for(
                lambda: (
                    monitoring.snapshot(app).queue_length == 0
                    and "send batch done" in sender.output
                ),
                "the retried job",
            )
        finally:
            sender.stop()
        assert len(smtp.messages) == 2
        assert monitoring.snapshot(app).failed_count == 0
        # Retrying again finds nothing: the job is no longer failed.
        assert monitoring.retry_failed(None, app) == monitoring.RetryResult()
