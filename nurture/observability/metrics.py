"""The Prometheus metrics nurture records, and the text ``GET /metrics`` answers with.

Under gunicorn and for workers on the same machine, ``PROMETHEUS_MULTIPROC_DIR`` names a
directory every process writes its counters to (prometheus-client's multiprocess mode); the
process that answers a scrape adds them up. Without it each process counts in memory and
``/metrics`` shows its own. The metrics are made on first use, not at import: the directory
must exist first, and a process that never sends mail never opens the sending files.

Gauges that describe the system rather than one process (queue depth, workers alive) are not
kept here: the scrape reads them from the database and Redis (see ``nurture.web.ops``).
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The outcomes a mail can have in one send attempt (the ledger's states, seen from a worker).
OUTCOMES = ("sent", "failed", "skipped", "retry", "deferred")


@dataclass(frozen=True)
class Metrics:
    """The process's metrics, made once (see :func:`metrics`)."""

    mails: Counter
    smtp_seconds: Histogram
    smtp_errors: Counter
    mail_delay: Histogram
    rejection_to_first_mail: Histogram
    send_batch_seconds: Histogram
    tracking_hits: Counter
    scheduler_pass_seconds: Histogram
    scheduler_failures: Counter


def multiproc_dir() -> str | None:
    """The shared directory of multiprocess mode, or None (each process on its own)."""
    return os.environ.get(MULTIPROC_ENV) or None


@functools.cache
def metrics() -> Metrics:
    """This process's metrics, made on first use."""
    directory = multiproc_dir()
    if directory:
        os.makedirs(directory, exist_ok=True)
    # The *_created series double every counter's lines and no dashboard here reads them.
    disable_created_metrics()
    made = Metrics(
        mails=Counter(
            "nurture_mails",
            "Mails a worker finished with, by outcome (sent, failed, skipped, retry, deferred) "
            "and a short reason",
            ["outcome", "reason"],
        ),
        smtp_seconds=Histogram(
            "nurture_smtp_send_seconds",
            "Time of one SMTP conversation (MAIL FROM to the relay's verdict), per mail",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
        smtp_errors=Counter(
            "nurture_smtp_errors",
            "SMTP failures by class: 4xx, 5xx, connection, timeout, tls, auth, no_reply",
            ["error_class"],
        ),
        mail_delay=Histogram(
            "nurture_mail_delay_seconds",
            "From the moment a mail was due (queued, or its retry time) to its sending",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
        ),
        rejection_to_first_mail=Histogram(
            "nurture_rejection_to_first_mail_seconds",
            "From an ATS rejection (the enrolment) to the first mail of its drip, step delay "
            "included",
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 172800, 604800),
        ),
        send_batch_seconds=Histogram(
            "nurture_send_batch_seconds",
            "Time a worker spent on one send job (a batch of message ids)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        ),
        tracking_hits=Counter(
            "nurture_tracking_hits",
            "Open-pixel and click hits by kind and outcome: human, machine, not recorded, "
            "no message, bad token",
            ["kind", "outcome"],
        ),
        scheduler_pass_seconds=Histogram(
            "nurture_scheduler_pass_seconds",
            "Duration of one scheduler pass (due messages made, lost ones found, ids enqueued)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        ),
        scheduler_failures=Counter(
            "nurture_scheduler_pass_failures", "Scheduler passes that failed (database or Redis)"
        ),
    )
    # Known series start at zero, so a dashboard shows 0 rather than "no data".
    made.mails.labels("sent", "accepted")
    for kind in ("open", "click"):
        made.tracking_hits.labels(kind, "human")
    return made


def observe_many(histogram: Histogram, values: Iterable[float]) -> None:
    """``histogram.observe(v)`` for each value, with one write per bucket instead of per value.

    Under multiprocess mode every observation is a locked write to a mapped file; a send batch
    adds its 50 mails' times at once. Uses the histogram's bucket list (prometheus-client has
    no bulk observe) and falls back to observing one by one if that ever changes.
    """
    values = list(values)
    if not values:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    total.inc(sum(values))


def exposition(
    collectors: Iterable[Any] = (), directory: str | None = None, accept: str | None = None
) -> tuple[bytes, str]:
    """Every process's metrics and ``collectors`` (read now) as Prometheus text, and its type.

    ``accept`` is the scraper's Accept header: OpenMetrics when it asks for it.
    """
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    directory = directory or multiproc_dir()
    if directory and os.path.isdir(directory):
        MultiProcessCollector(registry, path=directory)
    else:
        metrics()
        registry.register(_ThisProcess())
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type


class _ThisProcess:
    """This process's own metrics (and Python's process and GC metrics), outside multiprocess."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def process_exited(pid: int) -> None:
    """Tidy after a process of the multiprocess directory ended (gunicorn's child_exit hook)."""
    directory = multiproc_dir()
    if directory and os.path.isdir(directory):
        mark_process_dead(pid, directory)
