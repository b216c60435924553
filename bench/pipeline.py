"""The send pipeline on PostgreSQL against a C SMTP sink, with the ceiling in the same run.

Run it from the repository root:

    .venv/bin/python bench/pipeline.py           # 100,000 due enrolments; 20,000 mails end to end
    .venv/bin/python bench/pipeline.py --quick   # 10,000 and 2,000: under a minute
    .venv/bin/python bench/pipeline.py --scale 0.5 --send 50000 --runs 2
    .venv/bin/python bench/pipeline.py --sink aiosmtpd     # the Python sink, exact Message-ID check
    .venv/bin/python bench/pipeline.py --sink-dump         # smtp-sink keeps every mail: exact check

It starts a throw-away PostgreSQL cluster, an embedded Redis and an SMTP sink. The sink is
Postfix's ``smtp-sink`` (C, a few tens of µs of CPU per mail; ``bash .ci/system-deps.sh``
installs it, Debian package ``postfix``), run as ``smtp-sink -u nobody -c 127.0.0.1:PORT 1000``;
``--sink aiosmtpd`` uses ``SmtpCapture`` in a child process instead (about 1.2 ms of CPU per
mail, so on 2 cores it is itself the bottleneck). The clock is the system's. Four drips on the
starter templates are made by ``core.campaigns.service`` and ``enrolment.enrol_all``; before each
run the measured one gets its enrolments due again and the tables are VACUUM ANALYZEd.

1. ``core.delivery.scheduling.create_due_messages`` on 100,000 due enrolments (goal: under 10 s).
2. ``tasks.scheduling.run_tick`` (create, enqueue) with two ``python worker.py`` running, timed
   until the ledger has every message ``sent`` (goal: 1,000 mails/s); then, in the same run,
   the ceiling: as many mails, pre-built by the real send path (a few real mails of the same
   drip step, cycled, so of the same size), pushed into the same sink by plain ``smtplib``
   clients in their own processes, one reused connection each, as many as there are workers
   (goal: the pipeline at least half the ceiling). The CPU each process used (from /proc:
   each worker, this process as the scheduler, PostgreSQL's backends and its other processes,
   Redis, the sink; the ceiling's clients and sink) shows where the two cores went (goal:
   workers at most 1 ms of CPU per mail). The load average is printed before and after each
   run. The ledger is checked against the sink: every message ``sent`` once with one attempt
   and a Message-ID of its own, and the sink accepted exactly that many mails. smtp-sink sees
   no Message-ID (it only counts, with ``-c``); ``--sink-dump`` has it dump every mail to a
   file (``-D``, in /dev/shm; about half again its CPU) and ``--sink aiosmtpd`` keeps them,
   and then the sink's Message-IDs must be the ledger's, none twice.
3. The workers' peak RSS, VmHWM, reset before each run through /proc/PID/clear_refs
   (goal: under 100 MB).
4. Warm batches of 500 through ``tasks.sending.send_messages`` in this process, into the same
   sink: one timed, one under cProfile (stages per message, top 15 functions by cumulative
   time); the workers run this same code.

Figures are the median of ``--runs`` runs with the min-max; a table of the goals ends it. The
script exits 0 whether the goals are met or not.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is not a package: measure this checkout's nurture

import argparse
import cProfile
import dataclasses
import multiprocessing
import os
import platform
import re
import shutil
import signal
import smtplib
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
from nurture.core.delivery.sending import send_messages as send_service
from nurture.dev.embedded import EmbeddedRedis, SmtpCapture, die_with_parent, free_port
from nurture.extensions import db
from nurture.models import Candidate
from nurture.tasks import get_redis
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import (
    close_sender,
    send_messages,
    sender_for,
    template_library,
)

GOAL_DUE_S, GOAL_RATE, GOAL_RATIO, GOAL_WORKER_MS, GOAL_RSS_MB = 10.0, 1000.0, 0.5, 1.0, 100.0
BATCH, SAMPLES = 500, 20
SMTP_SINK = "/usr/sbin/smtp-sink"
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


def load() -> str:
    """The machine's load average over 1, 5 and 15 minutes."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


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


class AiosmtpdSink:
    """SmtpCapture in a child process, off this script's GIL; it keeps the Message-IDs."""

    label, exact = "aiosmtpd (SmtpCapture)", True

    def __enter__(self) -> AiosmtpdSink:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_sink_main, args=(child,), daemon=True)
        self.process.start()
        self.url: str = self.conn.recv()
        return self

    def pids(self) -> list[int]:
        return [self.process.pid]

    def reset(self) -> None:
        """Forget what came so far."""
        self._ask("reset")

    def received(self, expected: int = 0) -> tuple[int, list[bytes] | None]:
        """Mails accepted since the reset, and their Message-IDs."""
        ids = self._ask("report")
        return len(ids), ids

    def _ask(self, command: str) -> list[bytes]:
        self.conn.send(command)
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.process.join(10)


class SmtpSink:
    """Postfix's smtp-sink: counts what it accepts (``-c``); with ``dump``, writes it to a file."""

    def __init__(self, tmp: Path, stack: ExitStack, dump: bool = False) -> None:
        self.tmp, self.dump = tmp, None
        if dump:  # tmpfs: the dump must not wait for a disk; smtp-sink writes it as nobody
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=shm)))
            if os.geteuid() == 0:
                shutil.chown(folder, "nobody")
            self.dump = folder / "mails"
        self.label = "smtp-sink (Postfix, C)" + (", dumping every mail (-D)" if dump else "")
        self.exact = dump  # without the dump it only counts

    def __enter__(self) -> SmtpSink:
        port = free_port()
        self.url = f"smtp://127.0.0.1:{port}"
        self.counters = self.tmp / "smtp-sink.counters"
        command = [
            SMTP_SINK,
            *(["-u", "nobody"] if os.geteuid() == 0 else []),
            "-c",
            *(["-D", str(self.dump)] if self.dump else []),
            f"127.0.0.1:{port}",
            "1000",
        ]
        with self.counters.open("wb") as out, (self.tmp / "smtp-sink.log").open("wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err,
                                            preexec_fn=die_with_parent())  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=5).quit()
                break
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, (
                    f"smtp-sink did not start: {(self.tmp / 'smtp-sink.log').read_text()}"
                )
                time.sleep(0.05)
        self.base = self._count()
        return self

    def pids(self) -> list[int]:
        return [self.process.pid]

    def _count(self) -> int:
        """The last ``mesg=`` counter smtp-sink wrote (it writes one per ".", QUIT, session)."""
        found = re.findall(rb"mesg=(\d+)", self.counters.read_bytes()[-4096:])
        return int(found[-1]) if found else 0

    def reset(self) -> None:
        """Count from here; empty the dump (smtp-sink opens it per mail transaction)."""
        self.base = self._count()
        if self.dump:
            self.dump.unlink(missing_ok=True)

    def received(self, expected: int = 0) -> tuple[int, list[bytes] | None]:
        """Mails accepted since the reset, and their Message-IDs if dumped."""
        deadline = time.monotonic() + 2  # the counter may trail the last 250 by a moment
        while (count := self._count() - self.base) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.dump:
            return count, None
        data = self.dump.read_bytes() if self.dump.exists() else b""
        return count, MESSAGE_ID.findall(data)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


class KeepTransport:
    """Stands in for SmtpTransport and keeps what it is given: real mails for the ceiling."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, str, bytes]] = []

    def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        self.mails.append((envelope_from, recipient, data))

    def close(self) -> None:
        pass


def build_samples(app: Flask, campaign_id: int) -> list[tuple[str, str, bytes]]:
    """Real mails of the drip's first step, made by the send path the workers run."""
    make_due(campaign_id)
    create_due_messages(db.session, datetime.now(UTC))
    ids = list(db.session.scalars(text("SELECT id FROM messages WHERE campaign_id = :c"),
                                  {"c": campaign_id}))  # fmt: skip
    keep = KeepTransport()
    sender = dataclasses.replace(sender_for(app), transport=keep, step_templates={})
    send_service(db.session, sender, app.extensions["nurture.clock"].now, ids)
    db.session.remove()
    assert len(keep.mails) == len(ids), f"built {len(keep.mails)} of {len(ids)} sample mails"
    return keep.mails


def _client_main(url: str, mails: list[tuple[str, str, bytes]], count: int, conn: Any) -> None:
    """A ceiling client: one connection, ``count`` pre-built mails, as fast as smtplib goes."""
    host, port = url.rpartition("/")[2].split(":")
    smtp = smtplib.SMTP(host, int(port))
    smtp.ehlo()
    conn.send("ready")
    conn.recv()  # go
    started = time.process_time()
    for index in range(count):
        envelope_from, recipient, data = mails[index % len(mails)]
        smtp.sendmail(envelope_from, [recipient], data)
    conn.send(time.process_time() - started)
    smtp.quit()


def ceiling(sink: Any, mails: list[tuple[str, str, bytes]], n: int, clients: int) -> dict:
    """``n`` pre-built mails into ``sink`` over ``clients`` connections, one process each."""
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for index in range(clients):
        parent, child = context.Pipe()
        share = n // clients + (index < n % clients)
        processes.append(context.Process(target=_client_main, daemon=True,
                                         args=(sink.url, mails, share, child)))  # fmt: skip
        pipes.append(parent)
        processes[-1].start()
    for pipe in pipes:
        assert pipe.recv() == "ready"
    sink.reset()
    sink_before = cpu(sink.pids())
    started = time.perf_counter()
    for pipe in pipes:
        pipe.send("go")
    client_cpu = sum(pipe.recv() for pipe in pipes)
    elapsed = time.perf_counter() - started
    sink_cpu = cpu(sink.pids()) - sink_before
    for process in processes:
        process.join(30)
    accepted, _ = sink.received(n)
    return {"elapsed": elapsed, "rate": n / elapsed, "clients": client_cpu, "sink": sink_cpu,
            "accepted": accepted}  # fmt: skip


def memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", status)[1]) / 1024 for key in ("VmHWM", "VmRSS")}


def reset_peak(pid: int) -> bool:
    """Set a process's VmHWM back to its current RSS (Linux 4.0+; our own children)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def is_backend(pid: int) -> bool:
    """Whether a postgres process serves a client ("postgres: user db 127.0.0.1(port) ...")."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\(\d+\)|\[local\]", title))


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


def bench_due(app: Flask, campaign_id: int, n: int, runs: int, postgres: Any) -> float:
    """1. Due enrolments -> queued messages with create_due_messages; the median seconds."""
    rows = []
    print(
        f"\n1. {n:,} due enrolments -> queued messages: create_due_messages, batches of "
        f"{app.config['SCHEDULER_BATCH_SIZE']:,}, {runs} runs; load average {load()}"
    )
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
    for index, label in enumerate(("wall seconds", "CPU s, Python", "CPU s, PostgreSQL")):
        print(f"   {label:<30} {spread([row[index] for row in rows])}")
    print(f"   {'messages per second':<30} {n / wall:,.0f}   goal {n:,} in < {goal:g} s: "
          f"{'met' if wall < goal else 'MISSED'}   (load average after: {load()})")  # fmt: skip
    return wall


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


def stop_workers(workers: list[subprocess.Popen], logdir: Path, wait: float = 30) -> None:
    """SIGTERM, as an operator stops them; one still there after ``wait`` s is said and aborted.

    Workers run with PYTHONFAULTHANDLER=1, so SIGABRT writes where it hung to its log.
    """
    for worker in workers:
        worker.terminate()
    deadline = time.monotonic() + wait
    for index, worker in enumerate(workers):
        try:
            worker.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            worker.send_signal(signal.SIGABRT)
            worker.wait(15)
            tail = (logdir / f"worker{index}.log").read_text(errors="replace")[-3000:]
            print(f"\n   worker {index + 1} (pid {worker.pid}) was still running {wait:g} s after "
                  f"SIGTERM (load average {load()}); SIGABRT; its log ends:\n{tail}")  # fmt: skip


def cpu_row(label: str, used: list[float], elapsed: list[float], n: int) -> None:
    """CPU seconds, µs per mail and share of two cores, each run's, as median (min-max)."""
    share = statistics.median(u / (2 * e) * 100 for u, e in zip(used, elapsed, strict=True))
    per_mail = spread([u / n * 1e6 for u in used], "{:,.0f}")
    print(f"   {label:<26} {spread(used):>22} {per_mail:>22} {share:>12.0f}%")


def bench_pipeline(app: Flask, campaign_id: int, n: int, runs: int, sink: Any,
                   workers: list[subprocess.Popen], postgres: Any,
                   samples: list[tuple[str, str, bytes]]) -> dict[str, Any]:  # fmt: skip
    """2. and 3. The pipeline until the ledger says all sent, then the ceiling; each run."""
    count = len(workers)
    sizes = [len(mail[2]) for mail in samples]
    print(f"\n2. End to end, {n:,} mails: run_tick -> Redis -> {count} x worker.py -> "
          f"{sink.label}; then the ceiling in the same run: {n:,} pre-built mails "
          f"({len(samples)} real ones of the same step cycled, {min(sizes):,}-{max(sizes):,} "
          f"bytes) from {count} smtplib clients, one process and one reused connection each, "
          f"into the same sink; {runs} runs")  # fmt: skip
    postgres_backends = lambda: [pid for pid in postgres() if is_backend(pid)]  # noqa: E731
    groups = {f"worker {index + 1}": (lambda w=w: [w.pid]) for index, w in enumerate(workers)}
    groups |= {"scheduler + poll (here)": lambda: [os.getpid()],
               "postgres backends": postgres_backends,
               "postgres other": lambda: [p for p in postgres() if not is_backend(p)],
               "redis-server": lambda: children(os.getpid(), "redis-server"),
               "SMTP sink": sink.pids}  # fmt: skip
    rows, checks, ceilings, peaks, resets = [], [], [], [], []
    for run in range(runs):
        make_due(campaign_id)
        sink.reset()
        resets.append(all([reset_peak(w.pid) for w in workers]))
        load_before = load()
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
        peaks.append(max(memory_mb(w.pid)["VmHWM"] for w in workers))
        states, attempts, sent = ledger(campaign_id)
        accepted, ids = sink.received(n)
        exact = ids is None or (len(ids) == len(set(ids)) == n
                                and {mid.decode() for mid in ids} == sent)  # fmt: skip
        checks.append(result.created == result.enqueued == states.get("sent") == attempts
                      == accepted == len(sent) == n and exact)  # fmt: skip
        top = ceiling(sink, samples, n, count)
        ceilings.append(top)
        rows.append({"elapsed": elapsed, "tick": tick, "rate": n / elapsed} | used)
        seen = f", {len(set(ids)):,} distinct Message-IDs" if ids is not None else ""
        print(f"   run {run + 1}: load {load_before} -> {load()}; pipeline {n / elapsed:,.0f} "
              f"mails/s, ceiling {top['rate']:,.0f} mails/s; created {result.created:,}, "
              f"enqueued {result.enqueued:,}, ledger {states} with {attempts:,} attempts and "
              f"{len(sent):,} Message-IDs; sink accepted {accepted:,}{seen} "
              f"(ceiling {top['accepted']:,})")  # fmt: skip
    worker_names = [name for name in groups if name.startswith("worker ")]
    for row in rows:
        row["workers"] = sum(row[name] for name in worker_names)
    ratios = [row["rate"] / top["rate"] for row, top in zip(rows, ceilings, strict=True)]
    print(f"\n   {'':<36} {'median (min-max)':>26}")
    print(f"   {'wall seconds, pipeline':<36} {spread([r['elapsed'] for r in rows]):>26}")
    print(f"   {'of which run_tick (create, enqueue)':<36} {spread([r['tick'] for r in rows]):>26}")
    print(f"   {'wall seconds, ceiling':<36} {spread([c['elapsed'] for c in ceilings]):>26}")
    print(
        f"   {'mails per second, pipeline':<36} {spread([r['rate'] for r in rows], '{:,.0f}'):>26}"
    )
    print(
        f"   {'mails per second, ceiling':<36} "
        f"{spread([c['rate'] for c in ceilings], '{:,.0f}'):>26}"
    )
    print(f"   {'pipeline / ceiling':<36} {spread(ratios):>26}")
    what = (
        "ledger = sink by Message-ID, 1 attempt each, none twice"
        if sink.exact
        else "ledger sent = attempts = smtp-sink's count, distinct Message-IDs in the ledger"
    )
    print(
        f"   sent exactly once ({what}): {'yes' if all(checks) else 'NO'} in "
        f"{sum(checks)} of {len(checks)} runs"
    )

    print(f"\n   {'CPU, pipeline':<26} {'CPU seconds':>22} {'µs per mail':>22} "
          f"{'% of 2 cores':>13}")  # fmt: skip
    for name in groups:
        cpu_row(name, [row[name] for row in rows], [row["elapsed"] for row in rows], n)
    cpu_row("workers together", [row["workers"] for row in rows], [r["elapsed"] for r in rows], n)
    total = sum(statistics.median(row[name] for row in rows) for name in groups)
    print(
        f"   {'all of the above':<26} {total:>22.2f} {total / n * 1e6:>22,.0f} "
        f"-> at most {2 * n / total:,.0f} mails/s on 2 cores at this cost"
    )
    print(f"   {'CPU, ceiling':<26}")
    for label, key in (("smtplib clients together", "clients"), ("SMTP sink", "sink")):
        cpu_row(label, [top[key] for top in ceilings], [top["elapsed"] for top in ceilings], n)

    print(
        f"\n3. Worker memory: peak RSS (VmHWM) of the bigger worker in each run "
        f"(goal: under {GOAL_RSS_MB:g} MB)"
        + ("" if all(resets) else "; VmHWM could not be reset: peaks since start")
    )
    print(f"   {'VmHWM, MB':<36} {spread(peaks, '{:.1f}'):>26}")
    for index, worker in enumerate(workers):
        mem = memory_mb(worker.pid)
        print(
            f"   worker {index + 1} (pid {worker.pid}) after the last run: VmHWM "
            f"{mem['VmHWM']:6.1f} MB, VmRSS {mem['VmRSS']:6.1f} MB"
        )
    return {"rate": [r["rate"] for r in rows], "ceiling": [c["rate"] for c in ceilings],
            "ratio": ratios, "worker_ms": [r["workers"] / n * 1e3 for r in rows],
            "rss": peaks, "checks": checks}  # fmt: skip


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
    # Timed by this process's CPU clock, not the wall's: on a shared machine a wall-clock
    # profile charges other processes' time slices to whatever function was running.
    profile = cProfile.Profile(time.process_time)
    profiled = profile.runcall(send_messages, ids[2 * BATCH :])
    assert timed.get("sent") == profiled.get("sent") == BATCH, (timed, profiled)
    print(
        f"\n4. A batch of {BATCH} through tasks.sending.send_messages in this process, warm: "
        f"{wall / BATCH * 1e3:.2f} ms per message ({busy / BATCH * 1e3:.2f} ms of it this "
        f"process's CPU), {BATCH / wall:,.0f} mails/s from one process; the profile below "
        f"counts CPU time"
    )
    print_stages(profile, BATCH, "message", STAGES, 36, profile_out)
    print_top(profile, ROOT)


def print_goals(due_n: int, due_s: float, found: dict[str, Any]) -> None:
    """The goals beside the figures (medians of the runs, min-max), met or missed."""
    rate, ratio = statistics.median(found["rate"]), statistics.median(found["ratio"])
    worker_ms, rss = statistics.median(found["worker_ms"]), statistics.median(found["rss"])
    due_goal = GOAL_DUE_S * due_n / 100_000
    checks = found["checks"]
    goals = [
        ("end to end, mails/s", spread(found["rate"], "{:,.0f}"), f">= {GOAL_RATE:,.0f}",
         rate >= GOAL_RATE),
        ("pipeline / same run's ceiling", spread(found["ratio"]), f">= {GOAL_RATIO:g}",
         ratio >= GOAL_RATIO),
        ("worker CPU, ms per mail", spread(found["worker_ms"]), f"<= {GOAL_WORKER_MS:g}",
         worker_ms <= GOAL_WORKER_MS),
        ("worker peak RSS, MB", spread(found["rss"], "{:.1f}"), f"< {GOAL_RSS_MB:g}",
         rss < GOAL_RSS_MB),
        (f"{due_n:,} due enrolments, s", f"{due_s:.2f}", f"< {due_goal:g}", due_s < due_goal),
        ("sent exactly once, runs", f"{sum(checks)} of {len(checks)}", "all",
         all(checks)),
    ]  # fmt: skip
    print(
        f"\nGoals (median (min-max) of {len(checks)} runs; ceiling "
        f"{spread(found['ceiling'], '{:,.0f}')} mails/s)"
    )
    print(f"   {'':<32} {'figure':>26} {'goal':>10}")
    for label, figure, goal, met in goals:
        print(f"   {label:<32} {figure:>26} {goal:>10}  {'met' if met else 'MISSED'}")


def run(args: argparse.Namespace, url: str, postgres: Any, stack: ExitStack, tmp: Path) -> None:
    due_n, send_n = int(100_000 * args.scale), args.send or int(20_000 * args.scale)
    redis = stack.enter_context(EmbeddedRedis(tmp / "redis"))
    sink = stack.enter_context(
        AiosmtpdSink() if args.sink == "aiosmtpd" else SmtpSink(tmp, stack, args.sink_dump)
    )
    settings = SETTINGS | {"DATABASE_URL": url, "REDIS_URL": redis.url, "SMTP_URL": sink.url,
                           "INSTANCE_PATH": str(tmp / "instance")}  # fmt: skip
    app = create_app(Config, **settings)
    stack.enter_context(app.app_context())
    upgrade()
    started = time.perf_counter()
    last = due_n + send_n + 3 * BATCH
    fill_candidates(last + SAMPLES)
    due_id = drip(app, "Due enrolments", 1, due_n)
    send_id = drip(app, "End to end", due_n + 1, due_n + send_n)
    profile_id = drip(app, "Profiled batches", due_n + send_n + 1, last)
    samples = build_samples(app, drip(app, "Ceiling samples", last + 1, last + SAMPLES))
    print(
        f"Built {last + SAMPLES:,} candidates and 4 active drips in "
        f"{time.perf_counter() - started:.1f} s (SMTP sink: {sink.label})"
    )
    due_s = bench_due(app, due_id, due_n, args.runs, postgres)
    make_due(due_id, due=False)  # its queued messages must not go out in part 2
    env = dict(os.environ) | {f"NURTURE_{key}": value for key, value in settings.items()}
    env["PYTHONFAULTHANDLER"] = "1"  # a worker that will not stop says where it hangs
    if args.no_pipelining:
        env["NURTURE_SMTP_PIPELINING"] = "false"
    workers = start_workers(app, env, tmp, args.workers)
    try:
        found = bench_pipeline(app, send_id, send_n, args.runs, sink, workers, postgres, samples)
    finally:
        stop_workers(workers, tmp)
    make_due(send_id, due=False)
    bench_profile(profile_id, args.profile_out)
    close_sender(app)
    db.session.remove()
    db.engine.dispose()
    print_goals(due_n, due_s, found)


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
    parser.add_argument(
        "--sink",
        choices=("smtp-sink", "aiosmtpd"),
        default="smtp-sink",
        help="Postfix's smtp-sink (C, the default) or SmtpCapture (aiosmtpd)",
    )
    parser.add_argument(
        "--sink-dump",
        action="store_true",
        help="smtp-sink dumps every mail to /dev/shm: the exact Message-ID check",
    )
    parser.add_argument("--quick", action="store_true", help="the same as --scale 0.1")
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="workers send one SMTP command per round trip (to see what PIPELINING buys)",
    )
    parser.add_argument(
        "--profile-out", metavar="FILE", help="also write section 4's cProfile data to FILE"
    )
    args = parser.parse_args(argv)
    args.scale = 0.1 if args.quick else args.scale
    if args.sink == "smtp-sink" and not os.access(SMTP_SINK, os.X_OK):
        parser.error(f"{SMTP_SINK} is missing: run `bash .ci/system-deps.sh` as root "
                     "(Debian package postfix), or use --sink aiosmtpd")  # fmt: skip
    if args.sink_dump and args.sink != "smtp-sink":
        parser.error("--sink-dump is for --sink smtp-sink")
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.release()}; load average {load()}"
    )
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, ExitStack() as stack:
        url, postgres = postgres_for(args.url, stack)
        run(args, url, postgres, stack, Path(tmp))
    print(f"\nLoad average at the end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
