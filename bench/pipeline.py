"""The send pipeline on PostgreSQL: scheduler, queue, two worker.py processes, SMTP; and its cost.

Run it from the repository root:

    .venv/bin/python bench/pipeline.py           # 100,000 due enrolments; 20,000 mails end to end
    .venv/bin/python bench/pipeline.py --quick   # 10,000 and 2,000: about a minute and a half
    .venv/bin/python bench/pipeline.py --scale 0.5 --send 50000 --runs 2

It starts a throw-away PostgreSQL cluster, an embedded Redis and the SMTP sink ``SmtpCapture``
(no maildir; in a child process, off this script's GIL); the clock is the system's. Three drips
on the starter templates are made by ``services.campaigns`` and ``enrolment.enrol_all``; before
each run the measured one gets its enrolments due again and the tables are VACUUM ANALYZEd.

1. ``services.scheduling.create_due_messages`` on 100,000 due enrolments (goal: under 10 s).
2. ``tasks.scheduling.run_tick`` (create, enqueue) with two ``python worker.py`` running, timed
   until the ledger has every message ``sent`` (goal: 1,000 mails/s); then the ledger is checked
   against the sink (sent once, one attempt, same Message-IDs, none twice), and the CPU each
   process used (from /proc) shows where the two cores went.
3. The workers' peak RSS, VmHWM (goal: under 150 MB).
4. Warm batches of 500 through ``tasks.sending.send_messages`` in this process: one timed, one
   under cProfile (stages per message, top 15 functions by cumulative time).

Figures are the median of ``--runs`` runs with the min-max. The script exits 0 either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is not a package: measure this checkout's nurture

import argparse
import cProfile
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_migrate import upgrade
from rq import Worker
from sqlalchemy import select, text

from bench.common import (
    SETTINGS,
    children,
    cpu,
    fill_candidates,
    postgres_for,
    print_stages,
    print_top,
    spread,
)
from nurture import create_app
from nurture.config import Config
from nurture.core.campaigns.enrolment import enrol_all
from nurture.core.campaigns.service import create_campaign, set_status
from nurture.core.delivery.scheduling import create_due_messages
from nurture.dev.embedded import EmbeddedRedis, SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate
from nurture.tasks import get_redis
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender, send_messages, template_library

GOAL_DUE_S, GOAL_RATE, GOAL_RSS_MB, BATCH = 10.0, 1000.0, 150.0, 500
STEPS = [
    {"delay": "PT1H", "template": "rejection_followup"},
    {"delay": "P3D", "template": "talent_network_invite"},
    {"delay": "P7D", "template": "checkin_3_months"},
]
PENDING = text("SELECT count(*) FROM messages WHERE campaign_id = :c AND state IN "
               "('queued', 'sending')")  # fmt: skip
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>]+>)", re.M | re.I)
# The pipeline's stages in the profile as (label, file, function); they overlap (cumulative).
STAGES = [
    ("claim (one UPDATE per batch)", "core/delivery/sending.py", "claim"),
    ("load_batch (rows, suppression, cap)", "core/delivery/sending.py", "load_batch"),
    ("session.get (row loads)", "orm/session.py", "get"),
    ("deferred_until (window, cap)", "core/delivery/sending.py", "deferred_until"),
    ("Tokens.sign (every signed URL)", "core/tokens.py", "sign"),
    ("render (cached template)", "core/content/rendering.py", "render"),
    ("instrument (links, pixel)", "core/feedback/tracking.py", "instrument"),
    ("build_mime", "core/content/mime.py", "build_mime"),
    ("SmtpTransport.send", "core/delivery/smtp.py", "send"),
    ("advance (next step)", "core/delivery/sending.py", "advance"),
    ("Session.commit (per message)", "orm/session.py", "commit"),
    ("send_one (one message, no commit)", "core/delivery/sending.py", "send_one"),
]  # fmt: skip


def _sink_main(conn: Any) -> None:
    """Serve SmtpCapture keeping only the Message-IDs: the mail is dropped as it comes."""
    ids: list[bytes] = []
    lock = threading.Lock()

    def keep(message: Any) -> None:
        found = MESSAGE_ID.search(message.data.split(b"\r\n\r\n", 1)[0])
        with lock:
            ids.append(found.group(1) if found else b"")
            if len(ids) % 1000 == 0:
                capture.clear()  # bound the sink's memory

    capture = SmtpCapture(None, on_message=keep)
    conn.send(capture.start())
    while (command := conn.recv()) != "stop":
        with lock:
            conn.send(list(ids))
            if command == "reset":
                ids.clear()
    capture.stop()


class Sink:
    """SmtpCapture in a child process; ``ask("report")`` gives the Message-IDs received."""

    def __enter__(self) -> Sink:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_sink_main, args=(child,), daemon=True)
        self.process.start()
        self.url: str = self.conn.recv()
        return self

    def ask(self, command: str) -> list[bytes]:
        self.conn.send(command)
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.process.join(10)


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", status)[1]) / 1024 for key in ("VmHWM", "VmRSS")}


def drip(app: Flask, name: str, first: int, last: int) -> int:
    """An active drip with candidates ``first..last`` enrolled, none due yet; its id."""
    now = datetime.now(UTC)
    data = {"name": name, "kind": "drip", "entry": {"ats_event": "candidate.rejected"},
            "sender": {"name": "Acme Talent", "email": SETTINGS["SENDER_EMAIL"]},
            "steps": STEPS}  # fmt: skip
    campaign = create_campaign(db.session, data, template_library(app), now)
    set_status(db.session, campaign, "active", now)
    enrol_all(db.session, campaign.id, select(Candidate.id).where(
        Candidate.id.between(first, last)), now, None)  # fmt: skip
    db.session.commit()
    return campaign.id


def make_due(campaign_id: int, due: bool = True) -> None:
    """Back to the start: no messages, every enrolment at step one and due now (or not)."""
    params = {"c": campaign_id, "now": datetime.now(UTC) if due else None}
    db.session.execute(text("DELETE FROM messages WHERE campaign_id = :c"), params)
    db.session.execute(text(
        "UPDATE enrolments SET next_send_at = :now, next_position = 0, status = 'active', "
        "ended_at = NULL, exit_reason = '' WHERE campaign_id = :c"
    ), params)  # fmt: skip
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages, enrolments, candidates"))


def ledger(campaign_id: int) -> tuple[dict[str, int], int, set[str]]:
    """Messages by state, attempts in all, and the Message-IDs of those sent."""
    rows = db.session.execute(text(
        "SELECT state, count(*), sum(attempts), array_agg(message_id) FILTER "
        "(WHERE state = 'sent') FROM messages WHERE campaign_id = :c GROUP BY state"
    ), {"c": campaign_id}).all()  # fmt: skip
    db.session.rollback()
    sent = {mid for row in rows for mid in row[3] or []}
    return {row[0]: row[1] for row in rows}, sum(row[2] for row in rows), sent


def bench_due(app: Flask, campaign_id: int, n: int, runs: int, postgres: Any) -> None:
    """1. Due enrolments -> queued messages with create_due_messages."""
    rows = []
    for _ in range(runs):
        make_due(campaign_id)
        before = time.perf_counter(), time.process_time(), cpu(postgres())
        created, _ = create_due_messages(
            db.session, datetime.now(UTC), app.config["SCHEDULER_BATCH_SIZE"]
        )
        rows.append([time.perf_counter() - before[0], time.process_time() - before[1],
                     cpu(postgres()) - before[2]])  # fmt: skip
        db.session.remove()
        assert created == n, f"created {created} of {n}"
    wall = statistics.median(row[0] for row in rows)
    goal = GOAL_DUE_S * n / 100_000
    print(f"\n1. {n:,} due enrolments -> queued messages: create_due_messages, batches of "
          f"{app.config['SCHEDULER_BATCH_SIZE']:,}, {runs} runs")  # fmt: skip
    for index, label in enumerate(("wall seconds", "CPU s, Python", "CPU s, PostgreSQL")):
        print(f"   {label:<30} {spread([row[index] for row in rows])}")
    print(f"   {'messages per second':<30} {n / wall:,.0f}   goal {n:,} in < {goal:g} s: "
          f"{'met' if wall < goal else 'MISSED'}")  # fmt: skip


def start_workers(
    app: Flask, env: dict[str, str], logdir: Path, count: int = 2
) -> list[subprocess.Popen]:
    """``count`` times ``python worker.py``, as an operator starts them; back once all listen."""
    workers = []
    for index in range(count):
        with (logdir / f"worker{index}.log").open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "worker.py")],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + 60
    while len(Worker.all(connection=get_redis(app))) < count:
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), (
            f"workers did not start; see {logdir}/worker*.log")  # fmt: skip
        time.sleep(0.1)
    return workers


def bench_pipeline(app: Flask, campaign_id: int, n: int, runs: int, sink: Sink,
                   workers: list[subprocess.Popen], postgres: Any) -> None:  # fmt: skip
    """2. run_tick -> Redis -> the worker.py processes -> SMTP, until the ledger says all sent."""
    print(f"\n2. End to end, {n:,} mails: run_tick -> Redis -> {len(workers)} x worker.py -> "
          f"SmtpCapture, {runs} runs")  # fmt: skip
    rows, checks = [], []
    groups = {f"{len(workers)} workers": lambda: [w.pid for w in workers], "postgres": postgres,
              "SMTP sink": lambda: [sink.process.pid],
              "redis": lambda: children(os.getpid(), "redis-server"),
              "scheduler + poll": lambda: [os.getpid()]}  # fmt: skip
    for run in range(runs):
        make_due(campaign_id)
        sink.ask("reset")
        before = {name: cpu(pids()) for name, pids in groups.items()}
        started = time.perf_counter()
        result = run_tick(app)
        tick = time.perf_counter() - started
        while db.session.scalar(PENDING, {"c": campaign_id}):
            db.session.rollback()
            assert all(w.poll() is None for w in workers), "a worker died"
            assert time.perf_counter() - started < 120 + n / 20, ledger(campaign_id)[0]
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        used = {name: cpu(pids()) - before[name] for name, pids in groups.items()}
        states, attempts, sent = ledger(campaign_id)
        received = sink.ask("report")
        unique = {mid.decode() for mid in received}
        checks.append(result.created == result.enqueued == states.get("sent") == attempts == n
                      and len(received) == len(unique) == n and unique == sent)  # fmt: skip
        print(f"   run {run + 1}: created {result.created:,}, enqueued {result.enqueued:,}, "
              f"ledger {states} with {attempts:,} attempts; sink {len(received):,} mails, "
              f"{len(unique):,} Message-IDs")  # fmt: skip
        rows.append({"elapsed": elapsed, "tick": tick, "rate": n / elapsed} | used)
    rate = statistics.median(row["rate"] for row in rows)
    print(f"   {'wall seconds':<36} {spread([r['elapsed'] for r in rows])}")
    print(f"   {'of which run_tick (create, enqueue)':<36} {spread([r['tick'] for r in rows])}")
    print(
        f"   {'mails per second':<36} {spread([r['rate'] for r in rows], '{:,.0f}')}   "
        f"goal >= {GOAL_RATE:,.0f}: {'met' if rate >= GOAL_RATE else 'MISSED'}"
    )
    print(
        f"   sent exactly once (ledger = sink, 1 attempt each, no duplicate Message-ID): "
        f"{'yes' if all(checks) else 'NO'} in {sum(checks)} of {len(checks)} runs"
    )
    print(f"\n   {'CPU during the run':<20} {'CPU seconds':>22} {'µs per mail':>12} "
          f"{'% of 2 cores':>13}")  # fmt: skip
    for name in groups:
        used = [row[name] for row in rows]
        share = statistics.median(row[name] / (2 * row["elapsed"]) * 100 for row in rows)
        print(
            f"   {name:<20} {spread(used):>22} {statistics.median(used) / n * 1e6:>12,.0f} "
            f"{share:>12.0f}%"
        )
    total = sum(statistics.median(row[name] for row in rows) for name in groups)
    print(
        f"   {'all of the above':<20} {total:>22.2f} {total / n * 1e6:>12,.0f} "
        f"-> at most {2 * n / total:,.0f} mails/s on 2 cores at this cost"
    )


def bench_memory(workers: list[subprocess.Popen]) -> None:
    """3. Each worker's peak and current RSS."""
    print(f"\n3. Worker memory after the runs (goal: peak under {GOAL_RSS_MB:g} MB)")
    for index, worker in enumerate(workers):
        mem = memory_mb(worker.pid)
        print(
            f"   worker {index + 1} (pid {worker.pid})  VmHWM {mem['VmHWM']:6.1f} MB   "
            f"VmRSS {mem['VmRSS']:6.1f} MB   {'met' if mem['VmHWM'] < GOAL_RSS_MB else 'MISSED'}"
        )


def bench_profile(campaign_id: int, profile_out: str | None = None) -> None:
    """4. A warm batch in this process, timed; then one under cProfile."""
    make_due(campaign_id)
    create_due_messages(db.session, datetime.now(UTC))
    ids = list(
        db.session.scalars(
            text("SELECT id FROM messages WHERE campaign_id = :c ORDER BY id"), {"c": campaign_id}
        )
    )
    db.session.remove()
    send_messages(ids[:BATCH])  # warm: compiled templates, the SMTP connection, the pool
    started, cpu_started = time.perf_counter(), time.process_time()
    timed = send_messages(ids[BATCH : 2 * BATCH])
    wall, busy = time.perf_counter() - started, time.process_time() - cpu_started
    profile = cProfile.Profile()
    profiled = profile.runcall(send_messages, ids[2 * BATCH :])
    assert timed.get("sent") == profiled.get("sent") == BATCH, (timed, profiled)
    print(
        f"\n4. A batch of {BATCH} through tasks.sending.send_messages in this process, warm: "
        f"{wall / BATCH * 1e3:.2f} ms per message ({busy / BATCH * 1e3:.2f} ms of it this "
        f"process's CPU), {BATCH / wall:,.0f} mails/s from one process"
    )
    print_stages(profile, BATCH, "message", STAGES, 36, profile_out)
    print_top(profile, ROOT)


def run(args: argparse.Namespace, url: str, postgres: Any, stack: ExitStack, tmp: Path) -> None:
    due_n, send_n = int(100_000 * args.scale), args.send or int(20_000 * args.scale)
    redis = stack.enter_context(EmbeddedRedis(tmp / "redis"))
    sink = stack.enter_context(Sink())
    settings = SETTINGS | {"DATABASE_URL": url, "REDIS_URL": redis.url, "SMTP_URL": sink.url,
                           "INSTANCE_PATH": str(tmp / "instance")}  # fmt: skip
    app = create_app(Config, **settings)
    stack.enter_context(app.app_context())
    upgrade()
    started = time.perf_counter()
    fill_candidates(due_n + send_n + 3 * BATCH)
    due_id = drip(app, "Due enrolments", 1, due_n)
    send_id = drip(app, "End to end", due_n + 1, due_n + send_n)
    profile_id = drip(app, "Profiled batches", due_n + send_n + 1, due_n + send_n + 3 * BATCH)
    print(
        f"Built {due_n + send_n + 3 * BATCH:,} candidates and 3 active drips in "
        f"{time.perf_counter() - started:.1f} s (SMTP sink: SmtpCapture, no maildir)"
    )
    bench_due(app, due_id, due_n, args.runs, postgres)
    make_due(due_id, due=False)  # its queued messages must not go out in part 2
    env = dict(os.environ) | {f"NURTURE_{key}": value for key, value in settings.items()}
    workers = start_workers(app, env, tmp, args.workers)
    try:
        bench_pipeline(app, send_id, send_n, args.runs, sink, workers, postgres)
        bench_memory(workers)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(15)
    make_due(send_id, due=False)
    bench_profile(profile_id, args.profile_out)
    close_sender(app)
    db.session.remove()
    db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Parse options, start PostgreSQL, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (else a throw-away cluster)")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of 100,000 due enrolments and 20,000 mails end to end",
    )
    parser.add_argument("--send", type=int, help="mails end to end (default 20,000 x scale)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case")
    parser.add_argument(
        "--workers", type=int, default=2, help="worker.py processes end to end (the goal assumes 2)"
    )
    parser.add_argument("--quick", action="store_true", help="the same as --scale 0.1")
    parser.add_argument(
        "--profile-out", metavar="FILE", help="also write section 4's cProfile data to FILE"
    )
    args = parser.parse_args(argv)
    args.scale = 0.1 if args.quick else args.scale
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}; load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, ExitStack() as stack:
        url, postgres = postgres_for(args.url, stack)
        run(args, url, postgres, stack, Path(tmp))
    print(f"\nLoad average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
