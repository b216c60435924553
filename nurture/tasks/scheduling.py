"""The scheduler's periodic pass."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy.exc import DBAPIError

from nurture import runtime
from nurture.core.campaigns.abtest import decide_due
from nurture.core.campaigns.entries import run_entries
from nurture.core.delivery.outages import is_outage
from nurture.core.delivery.scheduling import TickResult, tick
from nurture.extensions import db
from nurture.tasks import enqueue_send, get_redis
from nurture.tasks.imports import enqueue_import
from nurture.tasks.inbound import process_inbound
from nurture.tasks.telemetry import timed_pass
from nurture.tasks.webhooks import schedule_webhooks
from nurture.workflows import pool_health
from nurture.workflows.imports import claim_stalled
from nurture.workflows.referrals import referral_pass
from nurture.workflows.retention import RetentionPolicy, retention_pass

log = logging.getLogger(__name__)


# Present while Redis keeps its data: missing, Redis was flushed or restarted empty.
QUEUE_MARK = "nurture:queue-mark"


@dataclass
class Watch:
    """What one scheduler process remembers between passes."""

    # Since when (monotonic) the database has answered every pass; None after an outage.
    connected_since: float | None = None
    monotonic: Callable[[], float] = time.monotonic


def _watch(app: Flask) -> Watch:
    return app.extensions.setdefault("nurture.scheduler", Watch())


def redis_lost_its_jobs(app: Flask) -> bool:
    """Whether Redis lost its data since the last good pass (or never had the mark).

    The mark is set by the pass that enqueued everything queued; finding it gone means the
    jobs went with Redis, so every queued message is enqueued again now instead of after the
    requeue timer. Raises if Redis is down.
    """
    return not get_redis(app).exists(QUEUE_MARK)


def _mark_redis(app: Flask) -> None:
    get_redis(app).set(QUEUE_MARK, uuid.uuid4().hex)


def run_tick(app: Flask) -> TickResult:
    """Create due messages, hand back dead workers' claims, enqueue every message needing a job.

    A dead worker's claims are handed back only once this scheduler has reached the database
    for a whole lease: after an outage, live workers get a lease's time to beat again.
    """
    config = app.config
    clock = runtime.clock(app)
    watch = _watch(app)
    lease = float(config["WORKER_LEASE_SECONDS"])
    since = watch.connected_since
    steady = since is not None and watch.monotonic() - since >= lease
    try:
        jobs_lost = redis_lost_its_jobs(app)
        result = timed_pass(
            get_redis(app),
            clock.now,
            lambda: tick(
                db.session,
                clock.now(),
                lambda batches: enqueue_send(batches, app),
                batch_size=config["SCHEDULER_BATCH_SIZE"],
                send_batch_size=config["SEND_BATCH_SIZE"],
                requeue_after=timedelta(seconds=config["REQUEUE_AFTER_SECONDS"]),
                stuck_after=timedelta(seconds=config["STUCK_AFTER_SECONDS"]),
                team_zone=config.get("TEAM_TIMEZONE") or "UTC",
                lease_seconds=lease if steady else None,
                jobs_lost=jobs_lost,
            ),
        )
        if jobs_lost:
            _mark_redis(app)
    except DBAPIError as exc:
        if is_outage(exc):
            watch.connected_since = None
        raise
    finally:
        db.session.remove()
    if watch.connected_since is None:
        watch.connected_since = watch.monotonic()
    return result


@dataclass(frozen=True)
class Periodic:
    """Housekeeping the scheduler runs every ``every``; each job is idempotent."""

    name: str
    every: timedelta
    run: Callable[[Flask, datetime], object]


def _entries(app: Flask, now: datetime) -> object:
    # Candidates that change are checked at once; this catches what time alone changes
    # ("no open in 60 days") and anything written behind the services' back.
    return run_entries(db.session, now)


def _retention(app: Flask, now: datetime) -> object:
    return retention_pass(db.session, now, policy=RetentionPolicy.from_config(app.config))


def _inbound(app: Flask, now: datetime) -> object:
    return process_inbound(app)


def _stalled_imports(app: Flask, now: datetime) -> object:
    after = timedelta(seconds=int(app.config["IMPORT_STALLED_AFTER_SECONDS"]))
    ids = claim_stalled(db.session, now, after)
    db.session.commit()  # claimed before the jobs exist: a second scheduler skips them
    for import_id in ids:
        log.warning("import %s stopped without finishing; handing it to a worker again", import_id)
        enqueue_import(import_id, app)
    return ids


def _webhooks(app: Flask, now: datetime) -> object:
    return schedule_webhooks(app, now)


def _referrals(app: Flask, now: datetime) -> object:
    return referral_pass(db.session, now, int(app.config["REFERRAL_CONSENT_DAYS"]))


def _ab_tests(app: Flask, now: datetime) -> object:
    return decide_due(db.session, now)


def _pool_health(app: Flask, now: datetime) -> object:
    rules = pool_health.policy(db.session, app.config)
    return pool_health.pool_pass(db.session, now, rules)


# The one list of periodic jobs besides the send pass itself.
PERIODIC = [
    Periodic("segment entries and exits", timedelta(minutes=1), _entries),
    Periodic("inbound mail", timedelta(minutes=1), _inbound),
    Periodic("stalled imports", timedelta(minutes=1), _stalled_imports),
    # A/B subjects whose time or sample size has come: the winner (or A) goes to the rest.
    Periodic("A/B subject tests", timedelta(minutes=1), _ab_tests),
    # Every pass: a retry is due to the second its backoff says, not to the next minute.
    Periodic("webhook deliveries", timedelta(seconds=1), _webhooks),
    Periodic("referrals", timedelta(minutes=10), _referrals),
    Periodic("retention", timedelta(days=1), _retention),
    # Sunset, re-engagement and today's snapshot of the pool's shares (the day's last pass wins).
    Periodic("pool health", timedelta(hours=1), _pool_health),
]


def run_periodic(app: Flask, last_run: dict[str, datetime]) -> list[str]:
    """Run the housekeeping jobs that are due (by the injected clock); returns their names."""
    now = runtime.clock(app).now()
    ran = []
    for job in PERIODIC:
        previous = last_run.get(job.name)
        if previous is not None and now - previous < job.every:
            continue
        try:
            job.run(app, now)
            db.session.commit()
            ran.append(job.name)
        except Exception:
            db.session.rollback()
            log.exception("periodic job %s failed", job.name)
        finally:
            db.session.remove()
        last_run[job.name] = now
    return ran
