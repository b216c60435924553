"""What exactly-once costs per mail: the ledger Message-ID, the outcome noted before each COMMIT,
the lease check, and the send-time checks read again every half second.

Run it from the repository root:

    .venv/bin/python bench/exactly_once.py            # 5 runs of each case
    .venv/bin/python bench/exactly_once.py --runs 3

1. Per call, in this process: ``ledger_message_id`` (HMAC-SHA256) against the random
   ``new_message_id`` it replaced; ``Accepted.of`` (the outcome kept for a COMMIT that fails);
   the lease's freshness check.
2. Warm batches of 500 through ``tasks.sending.send_messages`` on a throw-away PostgreSQL with
   an SMTP sink in a child process, as a worker sends them (with a lease): the checks never read
   again (what the batch did before), every 0.5 s (the default), and before every mail (what a
   relay slower than two mails a second gets). The last row's extra cost per mail is one re-read.

Figures are the median of ``--runs`` runs with the min-max. The script exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is not a package: measure this checkout's nurture

import argparse
import os
import platform
import tempfile
import time
import timeit
from contextlib import ExitStack
from datetime import UTC, datetime

from flask_migrate import upgrade
from sqlalchemy import text

from bench.common import SETTINGS, fill_candidates, postgres_for, spread
from bench.pipeline import Sink, drip, make_due
from nurture import create_app
from nurture.config import Config
from nurture.core.content.mime import ledger_message_id, message_id_key, new_message_id
from nurture.core.delivery.leases import Lease, worker_name
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.delivery.sending import Accepted
from nurture.dev.embedded import EmbeddedRedis
from nurture.extensions import db
from nurture.models import Enrolment, Message, Step
from nurture.tasks.sending import close_sender, send_messages, sender_for

BATCH = 500


def per_call(statement, number: int = 20000) -> float:  # noqa: ANN001 - a callable
    """Microseconds per call, the best of five rounds."""
    return min(timeit.repeat(statement, number=number, repeat=5)) / number * 1e6


def bench_calls() -> None:
    """1. The per-mail pieces, per call."""
    key, queued = message_id_key("bench-secret"), datetime.now(UTC)
    message = Message(id=1, state="sent", sent_at=queued, error="", message_id="<a@b>",
                      to_address="c@d", subject="s", queued_at=queued)  # fmt: skip
    enrolment = Enrolment(id=1, next_position=2, next_send_at=queued, status="active")
    step = Step(id=1, position=1)
    lease = Lease(worker_name(), 20, queued)
    lease._beaten(time.monotonic())  # as after a beat
    rows = [
        ("ledger_message_id (HMAC-SHA256)", per_call(
            lambda: ledger_message_id(key, "acme.example.com", 123456, queued))),
        ("new_message_id (random, before)", per_call(
            lambda: new_message_id("acme.example.com", 123456))),
        ("Accepted.of (outcome kept for the COMMIT)", per_call(
            lambda: Accepted.of(message, enrolment, step))),
        ("Lease.fresh", per_call(lease.fresh)),
    ]  # fmt: skip
    print("\n1. Per call, in this process (best of 5 rounds)")
    for name, micros in rows:
        print(f"   {name:<44} {micros:8.2f} µs")


def bench_checks(campaign_id: int, runs: int) -> None:
    """2. Warm batches with the checks read again never, every 0.5 s, before every mail."""
    from flask import current_app

    sender = sender_for(current_app)
    sender.lease = Lease(worker_name(), 20, datetime.now(UTC))
    cases = [("never (before)", float("inf")), ("every 0.5 s (default)", 0.5),
             ("before every mail", 0.0)]  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(runs):
        for name, age in cases:
            make_due(campaign_id)
            create_due_messages(db.session, datetime.now(UTC))
            ids = list(db.session.scalars(
                text("SELECT id FROM messages WHERE campaign_id = :c ORDER BY id"),
                {"c": campaign_id},
            ))  # fmt: skip
            db.session.remove()
            sender.checks_max_age = float("inf")
            send_messages(ids[:BATCH])  # warm: templates, the SMTP connection, the pool
            sender.checks_max_age = age
            started = time.perf_counter()
            outcome = send_messages(ids[BATCH : 2 * BATCH])
            results[name].append((time.perf_counter() - started) / BATCH * 1e3)
            assert outcome.get("sent") == BATCH, outcome
    print(f"\n2. Batches of {BATCH} through tasks.sending.send_messages, warm, with a lease; "
          "send-time checks read again:")  # fmt: skip
    base = min(results[cases[0][0]])
    for name, _ in cases:
        values = results[name]
        extra = (min(values) - base) * 1e3
        print(f"   {name:<24} {spread(values, '{:.3f}'):>24} ms per mail   "
              f"(+{extra:6.1f} µs per mail over never, best runs)")  # fmt: skip
    sender.checks_max_age, sender.lease = 0.5, None


def main(argv: list[str] | None = None) -> int:
    """Parse options, start PostgreSQL, Redis and the sink, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (else a throw-away cluster)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case")
    args = parser.parse_args(argv)
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    bench_calls()
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, ExitStack() as stack:
        url, _ = postgres_for(args.url, stack)
        redis = stack.enter_context(EmbeddedRedis(Path(tmp) / "redis"))
        sink = stack.enter_context(Sink())
        settings = SETTINGS | {"DATABASE_URL": url, "REDIS_URL": redis.url, "SMTP_URL": sink.url,
                               "INSTANCE_PATH": str(Path(tmp) / "instance")}  # fmt: skip
        app = create_app(Config, **settings)
        stack.enter_context(app.app_context())
        upgrade()
        fill_candidates(2 * BATCH)
        bench_checks(drip(app, "Exactly once", 1, 2 * BATCH), args.runs)
        close_sender(app)
        db.session.remove()
        db.engine.dispose()
    print(f"\nLoad average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
