"""The gauges a scrape reads from the system itself: the ledger's queue, Redis's workers, and
how promptly rejected candidates got their first mail."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Flask
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from nurture import runtime
from nurture.core.delivery.monitoring import queue_snapshot
from nurture.core.feedback import promptness as promptness_service
from nurture.extensions import db
from nurture.tasks import monitoring

log = logging.getLogger(__name__)


class SystemCollector(Collector):
    """Read at each scrape: queue depth and age from the database, workers and jobs from Redis."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauges; a component that does not answer is reported as down, not as an error."""
        up = GaugeMetricFamily(
            "nurture_component_up",
            "Whether this scrape could read the component (1) or not (0)",
            labels=["component"],
        )
        now = runtime.clock(self.app).now()
        try:
            queue = queue_snapshot(db.session, now)
        except Exception:  # noqa: BLE001 - a scrape must answer while the database is down
            log.warning("metrics: the database did not answer", exc_info=True)
            db.session.rollback()
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            depth = GaugeMetricFamily(
                "nurture_queue_messages",
                "Mails in the ledger's queue: due now, waiting (retry, window, cap, paused) "
                "and being sent",
                labels=["state"],
            )
            for state, count in (("due", queue.due), ("waiting", queue.waiting)):
                depth.add_metric([state], count)
            depth.add_metric(["sending"], queue.sending)
            yield depth
            yield GaugeMetricFamily(
                "nurture_queue_oldest_due_seconds",
                "How long the longest-waiting due mail has waited (0: none waits)",
                value=queue.oldest_due_age,
            )
            yield GaugeMetricFamily(
                "nurture_scheduler_lag_seconds",
                "How long the most overdue enrolment has waited for the scheduler to queue "
                "its mail",
                value=queue.scheduler_lag,
            )
        rq = monitoring.snapshot(self.app)
        up.add_metric(["redis"], 1 if rq.available else 0)
        yield up
        if not rq.available:
            return
        jobs = GaugeMetricFamily(
            "nurture_rq_jobs", "Send and import jobs in RQ, by state", labels=["state"]
        )
        jobs.add_metric(["queued"], rq.queue_length)
        jobs.add_metric(["started"], rq.started)
        jobs.add_metric(["failed"], rq.failed_count)
        yield jobs
        yield GaugeMetricFamily(
            "nurture_rq_workers", "Workers registered with RQ (alive)", value=len(rq.workers)
        )
        yield GaugeMetricFamily(
            "nurture_smtp_breaker_open",
            "1 while the SMTP circuit breaker holds sending (the relay kept failing)",
            value=1 if rq.breaker is not None else 0,
        )
        if rq.last_pass is not None:
            yield GaugeMetricFamily(
                "nurture_scheduler_last_pass_age_seconds",
                "Seconds since the last scheduler pass ended",
                value=max((now - rq.last_pass.at).total_seconds(), 0.0),
            )
            yield GaugeMetricFamily(
                "nurture_scheduler_last_pass_ok",
                "1 when the last scheduler pass succeeded",
                value=1 if rq.last_pass.ok else 0,
            )


# The window the promptness gauges cover, as the dashboard's panel.
PROMPTNESS_DAYS = 30


class PromptnessCollector(Collector):
    """Read at each scrape, in SQL: rejected candidates waiting past the team's target, the
    target, and the p50/p95 hours from rejection to first mail over the last 30 days."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """The gauges; none while the database does not answer (``nurture_component_up``
        says so)."""
        now = runtime.clock(self.app).now()
        try:
            target = promptness_service.target_hours(
                db.session, self.app.config["REJECTION_TARGET_HOURS"]
            )
            overall = promptness_service.promptness(
                db.session, now, target, PROMPTNESS_DAYS
            ).overall
        except Exception:  # noqa: BLE001 - a scrape must answer while the database is down
            log.warning("metrics: the database did not answer the promptness query", exc_info=True)
            db.session.rollback()
            return
        yield GaugeMetricFamily(
            "nurture_rejected_waiting_over_target",
            f"Rejected candidates (last {PROMPTNESS_DAYS} days) with no mail yet, past the target",
            value=overall.waiting,
        )
        yield GaugeMetricFamily(
            "nurture_rejection_target_hours",
            "The team's target from rejection to first mail",
            value=target,
        )
        # prometheus-client's SummaryMetricFamily has no quantiles: the samples are written here.
        name = "nurture_rejection_first_mail_hours"
        summary = Metric(
            name, f"Hours from rejection to first mail (last {PROMPTNESS_DAYS} days)", "summary"
        )
        for quantile, value in (("0.5", overall.p50_hours), ("0.95", overall.p95_hours)):
            if value is not None:
                summary.add_sample(name, {"quantile": quantile}, value)
        summary.add_sample(f"{name}_count", {}, overall.mailed)
        yield summary
