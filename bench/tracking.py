"""Tracking hits on the web tier: gunicorn serving wsgi:app on PostgreSQL, loaded over loopback.

Run it from the repository root:

    .venv/bin/python bench/tracking.py           # 3 worker setups, 3 runs of 10 s each (+ ceiling)
    .venv/bin/python bench/tracking.py --quick   # 1 run of 3 s each: well under a minute
    .venv/bin/python bench/tracking.py --setups sync:2 gthread:2x8 --seconds 20 --runs 5

It starts a throw-away PostgreSQL cluster (``--url``: an empty database instead), migrates it
with Alembic and fills it on the server: 5,000 candidates (``--quick``: 2,000) in a three-step
drip made by ``core.campaigns.service`` and ``enrolment.enrol_all``, and the first two steps'
messages queued by ``enrolment.queue_messages`` and then marked ``sent`` 2 to 71 hours ago (so
no hit counts as a scanner's: those come within seconds of delivery). Each message's mail is
put through ``core.feedback.tracking.instrument``, as sending does, and the open pixel and the
click links it gets (three per mail, the click token carrying the target URL) are the URLs loaded.

Then, for each worker setup (``conf`` is ``deploy/gunicorn.conf.py`` as it stands, the command line
to deploy; ``sync:2`` is ``gunicorn -k sync -w 2``, ``gthread:2x4`` is ``-k gthread -w 2
--threads 4``): ``gunicorn wsgi:app`` from the repository root on 127.0.0.1, configured by
``NURTURE_*`` variables only (``NURTURE_REDIS_URL`` points nowhere: tracking does not use
Redis), and beside it the ceiling: ``gunicorn bench.ceiling:app`` with the same setup, a WSGI
app that answers the pixel's bytes or a redirect at once (no database, no token). Once it
answers, a warm-up, then ``--runs`` timed runs of ``--seconds`` each from
``--processes`` load-generator processes holding ``--connections`` keep-alive ``http.client``
connections in all (closed loop: each sends its next request when the answer came; gunicorn's
sync workers close the connection after each answer, so those reconnect). Requests are 70 %
opens and 30 % clicks over all the messages, each with a mail client's or browser's User-Agent.

Each timed run of the app is followed by one of the ceiling with the same generator, and the
load average is printed before and after the pair. For each run: hits per second, the
ceiling's, their ratio, latency p50 / p95 / p99, answers other than 2xx/3xx and connection
errors, redirects to a URL the mail did not contain, answers served but marked
``X-Nurture-Recorded: no`` (the database did not take the hit in time), hits per transaction
(PostgreSQL's commit counter: how much group commit gathered); then "none lost": the open and
click rows the run added to ``events`` against the hits the generator saw answered as recorded,
by kind. The CPU each part used (gunicorn master and workers, PostgreSQL from /proc; the
generator measures itself; the rest of the machine, idle and stolen time from /proc/stat) shows
where the two cores went.
The machine is shared: the load average and a pure-Python reference loop are printed at the
start and the end, to tell a slow machine from a slow change.

Last, a hit's own cost: hits through the same app in this process (Flask's test client, no
gunicorn, a transaction per hit so the profile sees the database work), one timed pass and one
under cProfile (stages per hit, round trips per hit, top 15 functions by cumulative time).
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
import html as html_lib
import http.client
import multiprocessing
import os
import platform
import random
import re
import runpy
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import timeit
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import event, select, text

from bench.common import SETTINGS as COMMON_SETTINGS
from bench.common import (
    children,
    cpu_by_pid,
    fill_candidates,
    postgres_for,
    print_stages,
    print_top,
    spread,
)
from nurture import create_app
from nurture.config import Config
from nurture.core.campaigns.enrolment import enrol_all, queue_messages
from nurture.core.campaigns.service import create_campaign, set_status
from nurture.core.feedback.tracking import instrument
from nurture.core.tokens import Tokens
from nurture.dev.embedded import die_with_parent, free_port
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Step
from nurture.tasks.sending import template_library

GOAL_RATE, OPEN_SHARE = 2000.0, 0.7
SETTINGS = COMMON_SETTINGS | {
    "REDIS_URL": "redis://127.0.0.1:9/0",  # the discard port: nothing listens, nothing needs it
}
STEPS = [
    {"delay": "PT1H", "template": "rejection_followup"},
    {"delay": "P3D", "template": "talent_network_invite"},
    {"delay": "P7D", "template": "checkin_3_months"},
]
# Mail apps and browsers as they announce themselves (none a proxy's or scanner's).
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.6478.71 Mobile Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17726; Pro)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.12.0",
]  # fmt: skip
URL_IN_MAIL = re.compile(r'(?:href|src)="([^"]+)"')
SETUP = re.compile(r"^(sync|gthread):(\d+)(?:x(\d+))?$|^conf$")
# The stages of a hit in the profile as (label, file, function); they overlap (cumulative).
STAGES = [
    ("TrackingHits (the whole hit, no Flask)", "web/public/hits.py", "__call__"),
    ("open_hit (token check)", "core/feedback/tracking.py", "open_hit"),
    ("click_hit (token check)", "core/feedback/tracking.py", "click_hit"),
    ("Tokens.load (itsdangerous)", "core/tokens.py", "load"),
    ("GroupCommitter.record", "web/public/committer.py", "record"),
    ("Session.begin + commit + close", "web/public/committer.py", "_transaction"),
    ("record_hits", "core/feedback/tracking.py", "record_hits"),
    ("looks_like_machine (regex)", "core/feedback/tracking.py", "looks_like_machine"),
    ("note_engagements (UPDATE)", "core/audience/engagement.py", "note_engagements"),
    ("Session.execute (3 statements)", "orm/session.py", "execute"),
    ("Session.commit", "orm/session.py", "commit"),
    ("pool checkout (with pre-ping)", "pool/base.py", "_checkout"),
    ("pre-ping (SELECT 1)", "engine/default.py", "_do_ping_w_event"),
    ("psycopg Cursor.execute", "psycopg/cursor.py", "execute"),
    ("psycopg Connection.wait (on the server)", "psycopg/connection.py", "wait"),
]  # fmt: skip


# --- /proc ----------------------------------------------------------------------------------


def python_speed() -> float:
    """µs for a fixed pure-Python loop (best of 5): how fast this shared machine is right now."""
    return min(timeit.repeat("sum(i * i for i in range(1000))", number=200, repeat=5)) * 5e3


def machine_cpu() -> dict[str, float]:
    """The whole machine's CPU seconds so far (all cores), from /proc/stat: busy, idle, steal."""
    tick, fields = os.sysconf("SC_CLK_TCK"), Path("/proc/stat").read_text().split()[1:9]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) / tick for v in fields)
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two samples; a process gone in between counts up to the first."""
    return sum(after.get(pid, used) - used for pid, used in before.items()) + sum(
        used for pid, used in after.items() if pid not in before
    )


# --- data and tokens ------------------------------------------------------------------------


def sent_drip(app: Flask) -> list[tuple[int, int]]:
    """A three-step drip with every candidate's first two mails sent hours ago; their ids.

    Returns (message id, candidate id) pairs.
    """
    now = datetime.now(UTC)
    data = {"name": "Silver medalists", "kind": "drip",
            "entry": {"ats_event": "candidate.rejected"},
            "sender": {"name": "Acme Talent", "email": SETTINGS["SENDER_EMAIL"]},
            "steps": STEPS}  # fmt: skip
    campaign = create_campaign(db.session, data, template_library(app), now)
    set_status(db.session, campaign, "active", now)
    enrol_all(db.session, campaign.id, select(Candidate.id), now, None)
    rows = (
        select(Enrolment.candidate_id, Enrolment.campaign_id, Step.id, Enrolment.id)
        .join(Step, Step.campaign_id == Enrolment.campaign_id)
        .where(Enrolment.campaign_id == campaign.id, Step.position < 2)
    )
    queue_messages(db.session, rows, now)
    # What sending leaves behind; a scanner's hits come within seconds of delivery, not hours.
    db.session.execute(text(
        "UPDATE messages m SET state = 'sent', attempts = 1, to_address = c.email, "
        "subject = 'A note after your interview', "
        "message_id = '<' || m.id || '.bench@acme.example.com>', "
        "sent_at = :now - (2 + m.id % 70) * INTERVAL '1 hour', "
        "claimed_at = :now - (2 + m.id % 70) * INTERVAL '1 hour' - INTERVAL '1 second', "
        "enqueued_at = :now - (2 + m.id % 70) * INTERVAL '1 hour' - INTERVAL '2 seconds', "
        "queued_at = :now - (2 + m.id % 70) * INTERVAL '1 hour' - INTERVAL '2 seconds' "
        "FROM candidates c WHERE c.id = m.candidate_id AND m.campaign_id = :c"
    ), {"c": campaign.id, "now": now.replace(tzinfo=None)})  # fmt: skip
    db.session.execute(text(
        "UPDATE enrolments SET next_position = 2, next_send_at = :later WHERE campaign_id = :c"
    ), {"c": campaign.id, "later": datetime(2100, 1, 1)})  # fmt: skip
    db.session.commit()
    ids = [(row[0], row[1]) for row in db.session.execute(text(
        "SELECT id, candidate_id FROM messages WHERE campaign_id = :c AND state = 'sent' "
        "ORDER BY id"
    ), {"c": campaign.id})]  # fmt: skip
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE candidates, enrolments, messages, events"))
    return ids


def tracked_urls(app: Flask, ids: list[tuple[int, int]]
                 ) -> tuple[list[str], list[tuple[str, str]]]:  # fmt: skip
    """The open pixels and the (click path, target) pairs that ``instrument`` puts in mail."""
    tokens = Tokens.from_config(app.config)
    keep = tuple(f"{tokens.base_url}/{path}/" for path in ("u", "p", "r", "k"))  # as sending
    careers, network = app.config["CAREERS_URL"], app.config["TALENT_NETWORK_URL"]
    opens, clicks = [], []
    for message_id, candidate_id in ids:
        mail = (
            "<html><body><p>Thank you for your time with us.</p>"
            f'<p><a href="{careers}/jobs/{message_id % 50}?utm_source=nurture&amp;'
            f'utm_medium=email">A role like yours</a> · <a href="{careers}">Open roles</a> · '
            f'<a href="{network}">Our talent network</a></p>'
            f'<p><a href="{tokens.unsubscribe_url(candidate_id, message_id)}">Unsubscribe</a></p>'
            "</body></html>"
        )
        for url in URL_IN_MAIL.findall(instrument(mail, tokens, message_id, keep)):
            path = html_lib.unescape(url).removeprefix(tokens.base_url)
            if path.startswith("/o/"):
                opens.append(path)
            elif path.startswith("/c/"):
                clicks.append((path, tokens.load("click", path[3:])[1]))
    return opens, clicks


# --- the load generator ---------------------------------------------------------------------


def _connection_loop(port: int, opens: list[str], clicks: list[tuple[str, str]], seed: int,
                     start: float, end: float, out: dict[str, Any], check: bool
                     ) -> None:  # fmt: skip
    """One keep-alive connection, closed loop, until ``end``; adds its own counts to ``out``.

    ``check`` false (the ceiling app) takes any redirect as the right one.
    """
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    counts: Counter = Counter()  # this thread's own: ``+=`` on a shared one could lose counts
    last = start
    while time.monotonic() < start:
        time.sleep(0.001)
    while time.monotonic() < end:
        is_open = rng.random() < OPEN_SHARE
        path, target = (rng.choice(opens), None) if is_open else rng.choice(clicks)
        began = time.perf_counter()
        try:
            conn.request("GET", path, headers={"User-Agent": rng.choice(AGENTS)})
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            counts["connection errors"] += 1
            conn.close()
            continue
        latencies.append(time.perf_counter() - began)
        last = max(last, time.monotonic())
        if not 200 <= response.status < 400:
            counts[f"HTTP {response.status}"] += 1
        elif response.getheader("X-Nurture-Recorded") == "no":  # served, but not stored
            counts["not recorded"] += 1
        elif is_open:
            counts["open"] += 1
        elif check and response.getheader("Location") != target:
            counts["wrong redirect"] += 1
        else:
            counts["click"] += 1
    conn.close()
    out["threads"].append((counts, latencies, last))  # list.append is atomic


def _generator_main(conn: Any, opens: list[str], clicks: list[tuple[str, str]], index: int,
                    connections: int) -> None:  # fmt: skip
    """A load-generator process: on ("run", port, start, seconds) it runs and reports."""
    conn.send("ready")
    while (command := conn.recv()) != "stop":
        _, port, start, seconds, check = command
        out: dict[str, Any] = {"threads": []}
        cpu_before = time.process_time()
        threads = [
            threading.Thread(target=_connection_loop, args=(
                port, opens, clicks, hash((index, thread, start)), start, start + seconds, out,
                check))
            for thread in range(connections)
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        conn.send({
            "counts": sum((counts for counts, _, _ in out["threads"]), Counter()),
            "latencies": [x for _, latencies, _ in out["threads"] for x in latencies],
            "last": max((last for _, _, last in out["threads"]), default=start),
            "cpu": time.process_time() - cpu_before,
        })  # fmt: skip


class LoadGenerator:
    """``processes`` spawned processes sharing ``connections`` keep-alive connections."""

    def __init__(self, opens: list[str], clicks: list[tuple[str, str]], processes: int,
                 connections: int) -> None:  # fmt: skip
        self.args = opens, clicks
        self.shares = [connections // processes + (i < connections % processes)
                       for i in range(processes)]  # fmt: skip

    def __enter__(self) -> LoadGenerator:
        context = multiprocessing.get_context("spawn")
        self.conns, self.processes = [], []
        for index, share in enumerate(self.shares):
            parent, child = context.Pipe()
            process = context.Process(target=_generator_main, daemon=True,
                                      args=(child, *self.args, index, share))  # fmt: skip
            process.start()
            self.conns.append(parent)
            self.processes.append(process)
        for conn in self.conns:
            assert conn.recv() == "ready"
        return self

    def run(self, port: int, seconds: float, check: bool = True) -> dict[str, Any]:
        """Load ``port`` for ``seconds`` from every process; the counts, latencies and CPU."""
        start = time.monotonic() + 0.2
        for conn in self.conns:
            conn.send(("run", port, start, seconds, check))
        results = [conn.recv() for conn in self.conns]
        counts = sum((r["counts"] for r in results), Counter())
        latencies = sorted(x for r in results for x in r["latencies"])
        elapsed = max(r["last"] for r in results) - start
        return {"counts": counts, "latencies": latencies, "elapsed": elapsed, "start": start,
                "cpu": sum(r["cpu"] for r in results)}  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        for conn, process in zip(self.conns, self.processes, strict=True):
            try:
                conn.send("stop")
            except OSError:
                pass
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)


# --- gunicorn -------------------------------------------------------------------------------


def setup_workers(setup: str) -> int:
    """How many worker processes ``setup`` starts (``conf``: what gunicorn.conf.py says)."""
    if setup == "conf":
        return int(runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))["workers"])
    return int(SETUP.match(setup)[2])  # type: ignore[index]


def gunicorn_command(setup: str, app: str, port: int, log: Path) -> list[str]:
    """``gunicorn <app>`` as an operator starts it, for a setup such as ``gthread:2x4``.

    Every setup reads deploy/gunicorn.conf.py, the deployed configuration; ``conf`` adds nothing
    to it, the other setups override its worker class, workers and threads.
    """
    script = Path(sys.executable).parent / "gunicorn"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gunicorn"]
    command += [
        app,
        "--config",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
    ]
    if setup != "conf":
        kind, workers, threads = SETUP.match(setup).groups()  # type: ignore[union-attr]
        command += ["--workers", workers, "--worker-class", kind, "--threads", threads or "1"]
    return command + ["--error-logfile", str(log), "--log-level", "info"]


def start_gunicorn(stack: ExitStack, setup: str, app: str, env: dict[str, str], tmp: Path
                   ) -> tuple[subprocess.Popen, int, str]:  # fmt: skip
    """Start gunicorn serving ``app`` for ``setup``; back once every worker booted and answers."""
    name = f"{setup}-{app}".replace(":", "-").replace(".", "-")
    port, log = free_port(), tmp / f"gunicorn-{name}.log"
    command = gunicorn_command(setup, app, port, log)
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, preexec_fn=die_with_parent())  # fmt: skip
    stack.callback(stop_gunicorn, server)
    workers = setup_workers(setup)
    deadline = time.monotonic() + 60
    while True:
        booted = log.read_text().count("Booting worker") if log.exists() else 0
        if booted >= workers and len(children(server.pid)) >= workers:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/o/not-a-token.gif")
                if probe.getresponse().status in (200, 404):  # the ceiling answers everything
                    probe.close()
                    break
            except OSError:
                pass
        if server.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"gunicorn ({' '.join(command)}) did not come up:\n{tail}")
        time.sleep(0.1)
    shown = " ".join(["gunicorn", *command[command.index(app) :]]).replace(str(tmp), "$TMP")
    return server, port, shown


def stop_gunicorn(server: subprocess.Popen) -> None:
    """A graceful stop (SIGTERM to the master), then a kill if it hangs."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- measuring ------------------------------------------------------------------------------


def last_event_id() -> int:
    """The highest events.id so far (runs are told apart by it)."""
    value = db.session.scalar(text("SELECT coalesce(max(id), 0) FROM events"))
    db.session.rollback()
    return int(value)


def events_since(after_id: int) -> Counter:
    """Events added after ``after_id``: by kind, and how many of them marked machine."""
    rows = db.session.execute(text(
        "SELECT kind, machine, count(*) FROM events WHERE id > :i GROUP BY kind, machine"
    ), {"i": after_id}).all()  # fmt: skip
    db.session.rollback()
    found: Counter = Counter()
    for kind, machine, count in rows:
        found[kind] += count
        found["machine"] += count if machine else 0
    return found


def commits() -> int:
    """Transactions committed in this database so far (PostgreSQL's statistics, ~1 s late)."""
    value = db.session.scalar(text(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    ))  # fmt: skip
    db.session.rollback()
    return int(value or 0)


def load() -> str:
    """The 1-minute load average, as printed around each run."""
    return f"{os.getloadavg()[0]:.2f}"


def percentile(latencies: list[float], share: float) -> float:
    """The ``share`` quantile of sorted latencies, in ms."""
    if not latencies:
        return 0.0
    return latencies[min(int(len(latencies) * share), len(latencies) - 1)] * 1e3


def bench_setup(app: Flask, setup: str, generator: LoadGenerator, args: argparse.Namespace,
                env: dict[str, str], postgres: Any, tmp: Path) -> dict[str, Any]:  # fmt: skip
    """One worker setup: gunicorn serving wsgi:app and the ceiling app, warm-up, ``--runs``
    timed runs of each in turn; print and summarise."""
    with ExitStack() as stack:
        started = time.perf_counter()
        server, port, shown = start_gunicorn(stack, setup, "wsgi:app", env, tmp)
        boot = time.perf_counter() - started
        _, ceiling_port, ceiling_shown = start_gunicorn(stack, setup, "bench.ceiling:app", env, tmp)
        generator.run(port, args.warmup)  # every worker's imports, pools and caches
        generator.run(ceiling_port, args.warmup / 2, check=False)
        print(f"\n{shown}\n   up in {boot:.1f} s; {args.connections} connections from "
              f"{len(generator.shares)} processes, {OPEN_SHARE:.0%} opens, {args.warmup:g} s "
              f"warm-up, {args.runs} runs of {args.seconds:g} s, each followed by one of the "
              f"ceiling: {ceiling_shown.split(' --error-logfile')[0]}")  # fmt: skip
        rows = []
        gunicorn_pids = lambda: [server.pid, *children(server.pid)]  # noqa: E731
        for run in range(args.runs):
            load_before = load()
            with app.app_context():
                first, commits_before = last_event_id(), commits()
            before = cpu_by_pid(gunicorn_pids()), cpu_by_pid(postgres()), machine_cpu()
            result = generator.run(port, args.seconds)
            after = cpu_by_pid(gunicorn_pids()), cpu_by_pid(postgres()), machine_cpu()
            ceiling = generator.run(ceiling_port, args.seconds, check=False)
            load_after = load()
            with app.app_context():
                found, transactions = events_since(first), commits() - commits_before
            counts, latencies, elapsed = result["counts"], result["latencies"], result["elapsed"]
            ok = counts["open"] + counts["click"]
            failed = sum(v for k, v in counts.items() if k not in ("open", "click"))
            recorded = found["open"] == counts["open"] and found["click"] == counts["click"]
            ceiling_ok = ceiling["counts"]["open"] + ceiling["counts"]["click"]
            rows.append({
                "rate": ok / elapsed, "ok": ok, "failed": failed, "recorded": recorded,
                "not recorded": counts["not recorded"],
                "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
                "p99": percentile(latencies, 0.99), "ceiling": ceiling_ok / ceiling["elapsed"],
                "elapsed": elapsed, "gunicorn": cpu_used(before[0], after[0]),
                "postgres": cpu_used(before[1], after[1]), "generator": result["cpu"],
                "per transaction": ok / max(transactions, 1),
                **{key: after[2][key] - before[2][key] for key in ("busy", "idle", "steal")},
            })  # fmt: skip
            rows[-1]["ratio"] = rows[-1]["rate"] / max(rows[-1]["ceiling"], 1)
            problems = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())
                                 if k not in ("open", "click")) or "none"  # fmt: skip
            print(
                f"   run {run + 1} (load {load_before} -> {load_after}): {ok:,} hits in "
                f"{elapsed:.2f} s = {rows[-1]['rate']:,.0f}/s, ceiling "
                f"{rows[-1]['ceiling']:,.0f}/s ({rows[-1]['ratio']:.2f}x); {counts['open']:,} "
                f"opens, {counts['click']:,} clicks; failed: {problems}; events added: "
                f"{found['open']:,} opens, {found['click']:,} clicks ({found['machine']:,} "
                f"marked machine): {'all recorded' if recorded else 'MISMATCH'}; "
                f"~{rows[-1]['per transaction']:.1f} hits per transaction"
            )
        rate = statistics.median(row["rate"] for row in rows)
        print(f"   {'hits per second':<32} {spread([r['rate'] for r in rows], '{:,.0f}')}")
        print(f"   {'ceiling (trivial app), per s':<32} "
              f"{spread([r['ceiling'] for r in rows], '{:,.0f}')}")  # fmt: skip
        print(f"   {'ratio to the ceiling':<32} {spread([r['ratio'] for r in rows])}")
        for key in ("p50", "p95", "p99"):
            print(f"   {'latency ' + key + ', ms':<32} {spread([r[key] for r in rows])}")
        print(f"   {'hits per transaction (approx.)':<32} "
              f"{spread([r['per transaction'] for r in rows], '{:,.1f}')}")  # fmt: skip
        print(f"   {'failed (not 2xx/3xx, errors)':<32} "
              f"{sum(r['failed'] - r['not recorded'] for r in rows):,}")  # fmt: skip
        print(f"   {'served but not recorded':<32} {sum(r['not recorded'] for r in rows):,}")
        print(
            f"   every hit answered as recorded is in events: "
            f"{'yes' if all(r['recorded'] for r in rows) else 'NO'} in "
            f"{sum(r['recorded'] for r in rows)} of {len(rows)} runs"
        )
        print(f"\n   {'CPU during the runs':<24} {'CPU seconds':>22} {'µs per hit':>11} "
              f"{'% of 2 cores':>13}")  # fmt: skip
        for name in ("gunicorn", "postgres", "generator"):
            used = [row[name] for row in rows]
            per_hit = statistics.median(row[name] / max(row["ok"], 1) * 1e6 for row in rows)
            share = statistics.median(row[name] / (2 * row["elapsed"]) * 100 for row in rows)
            label = {"gunicorn": f"gunicorn ({setup_workers(setup)} workers)",
                     "postgres": "postgres", "generator": "load generator"}[name]  # fmt: skip
            print(f"   {label:<24} {spread(used):>22} {per_hit:>11,.0f} {share:>12.0f}%")
        # The machine as a whole (/proc/stat): what the rows above miss, and what nobody used.
        for name, part in (
            ("anything else", lambda r: r["busy"] - r["gunicorn"] - r["postgres"] - r["generator"]),
            ("idle", lambda r: r["idle"]),
            ("steal (other VMs)", lambda r: r["steal"]),
        ):
            used = [part(row) for row in rows]
            share = statistics.median(
                part(row) / (row["busy"] + row["idle"] + row["steal"]) * 100 for row in rows
            )
            print(f"   {name:<24} {spread(used):>22} {'':>11} {share:>12.0f}%")
        served = statistics.median(
            (row["gunicorn"] + row["postgres"]) / max(row["ok"], 1) for row in rows
        )
        print(
            f"   server side (gunicorn + postgres) {served * 1e6:,.0f} µs per hit -> at most "
            f"{2 / served:,.0f} hits/s on 2 cores with the generator elsewhere"
        )
    return {"setup": setup, "rate": rate, "rows": rows}


def bench_views(app: Flask, opens: list[str], clicks: list[tuple[str, str]], n: int,
                profile_out: str | None) -> None:  # fmt: skip
    """The hits in this process through Flask's test client: timed, then under cProfile.

    One client thread and the committer recording inline (TRACKING_GROUP_COMMIT off), so that
    the profile sees the database work too: a batch of one, the cost of a hit with no company.
    """
    app.config["TRACKING_GROUP_COMMIT"] = False
    rng = random.Random(7)
    hits = [
        (rng.choice(opens), None) if rng.random() < OPEN_SHARE else rng.choice(clicks)
        for _ in range(3 * n)
    ]
    client = app.test_client()  # no app context held here: each request gets its own session

    def serve(batch: list[tuple[str, str | None]]) -> int:
        good = 0
        for path, target in batch:
            response = client.get(path, headers={"User-Agent": AGENTS[good % len(AGENTS)]})
            good += (
                response.status_code == 200
                if target is None
                else (response.status_code == 302 and response.headers["Location"] == target)
            )
        return good

    serve(hits[:n])  # warm
    started, cpu_started = time.perf_counter(), time.process_time()
    timed = serve(hits[n : 2 * n])
    wall, busy = time.perf_counter() - started, time.process_time() - cpu_started
    statements: Counter = Counter()  # what goes to PostgreSQL, as SQLAlchemy's events see it
    with app.app_context():
        engine = db.engine
    listeners = [
        ("before_cursor_execute", lambda conn, cursor, statement, *args: statements.update(
            [" ".join(statement.split())[:70]])),
        ("begin", lambda conn: statements.update(["BEGIN"])),
        ("commit", lambda conn: statements.update(["COMMIT"])),
    ]  # fmt: skip
    if engine.pool._pre_ping:  # type: ignore[attr-defined]  # a SELECT 1 on every checkout
        listeners.append(("checkout", lambda *args: statements.update(["SELECT 1 (pre-ping)"])))
    for name, listener in listeners:
        event.listen(engine, name, listener)
    profile = cProfile.Profile()
    profiled = profile.runcall(serve, hits[2 * n :])
    for name, listener in listeners:
        event.remove(engine, name, listener)
    print(f"\nThe hits in this process (Flask test client, no gunicorn, a transaction per hit), "
          f"{n:,} hits warm: "
          f"{wall / n * 1e6:,.0f} µs per hit ({busy / n * 1e6:,.0f} µs of it this process's "
          f"CPU), {n / wall:,.0f} hits/s from one process; {timed + profiled:,} of {2 * n:,} "
          "answered as expected")  # fmt: skip
    print_stages(profile, n, "hit", STAGES, 38, profile_out)
    print(f"   Round trips to PostgreSQL per hit: {sum(statements.values()) / n:.2f}")
    for statement, times in statements.most_common(10):
        print(f"   {times / n:6.2f}  {statement}")
    print_top(profile, ROOT)


def run(args: argparse.Namespace, url: str, postgres: Any, stack: ExitStack, tmp: Path) -> None:
    settings = SETTINGS | {"DATABASE_URL": url, "INSTANCE_PATH": str(tmp / "instance")}
    app = create_app(Config, **settings)
    started = time.perf_counter()
    with app.app_context():
        upgrade()
        fill_candidates(args.candidates)
        ids = sent_drip(app)
    opens, clicks = tracked_urls(app, ids)
    print(f"Built {args.candidates:,} candidates, a 3-step drip and {len(ids):,} sent messages "
          f"(sent 2 to 71 hours ago) in {time.perf_counter() - started:.1f} s; "
          f"{len(opens):,} open pixels and {len(clicks):,} click links from "
          "tracking.instrument")  # fmt: skip
    env = dict(os.environ) | {f"NURTURE_{key}": value for key, value in settings.items()}
    generator = stack.enter_context(LoadGenerator(opens, clicks, args.processes, args.connections))
    results = []
    for setup in args.setups:
        try:
            results.append(bench_setup(app, setup, generator, args, env, postgres, tmp))
        except (RuntimeError, OSError) as error:  # report it and go on with the next setup
            print(f"\n{setup}: FAILED: {error}")
    print(f"\n{'setup':<14} {'hits/s median (min-max)':>24} {'ceiling/s':>20} {'ratio':>6} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'failed':>7} {'unrec.':>7} "
          f"{'recorded':>9} {'server µs/hit':>14}")  # fmt: skip
    for result in results:
        rows = result["rows"]
        served = statistics.median(
            (r["gunicorn"] + r["postgres"]) / max(r["ok"], 1) * 1e6 for r in rows
        )
        print(f"{result['setup']:<14} {spread([r['rate'] for r in rows], '{:,.0f}'):>24} "
              f"{spread([r['ceiling'] for r in rows], '{:,.0f}'):>20} "
              f"{statistics.median(r['ratio'] for r in rows):>6.2f} "
              f"{statistics.median(r['p50'] for r in rows):>7.1f} "
              f"{statistics.median(r['p95'] for r in rows):>7.1f} "
              f"{statistics.median(r['p99'] for r in rows):>7.1f} "
              f"{sum(r['failed'] - r['not recorded'] for r in rows):>7,} "
              f"{sum(r['not recorded'] for r in rows):>7,} "
              f"{sum(r['recorded'] for r in rows):>5} of {len(rows)} "
              f"{served:>14,.0f}")  # fmt: skip
    best = max(results, key=lambda r: r["rate"], default=None)
    lost = not results or not all(row["recorded"] for r in results for row in r["rows"])
    unrecorded = sum(row["not recorded"] for r in results for row in r["rows"])
    met = best is not None and best["rate"] >= GOAL_RATE
    shown = f"{best['setup']}, {best['rate']:,.0f} hits/s" if best else "no setup ran"
    print(f"goal >= {GOAL_RATE:,.0f} hits/s: {'met' if met else 'MISSED'} (best: {shown}); "
          f"none lost: {'NO' if lost else 'yes'} (every hit answered as recorded is in events; "
          f"{unrecorded:,} served unrecorded)")  # fmt: skip
    bench_views(app, opens, clicks, args.profile_hits, args.profile_out)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Parse options, start PostgreSQL, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (else a throw-away cluster)")
    parser.add_argument(
        "--setups",
        nargs="+",
        default=["conf", "gthread:2x8", "sync:2"],
        metavar="conf|KIND:WORKERS[xTHREADS]",
        help="gunicorn worker setups (default: conf gthread:2x8 sync:2)",
    )
    parser.add_argument("--candidates", type=int, help="candidates (default 5,000; quick 2,000)")
    parser.add_argument("--runs", type=int, help="timed runs per setup (default 3; quick 1)")
    parser.add_argument("--seconds", type=float, help="length of a run (default 10; quick 3)")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before the runs")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--connections", type=int, default=16, help="concurrent connections in all (default 16)"
    )
    parser.add_argument(
        "--profile-hits", type=int, help="hits per in-process pass (default 3,000; quick 1,000)"
    )
    parser.add_argument("--quick", action="store_true", help="a short run: well under a minute")
    parser.add_argument(
        "--profile-out", metavar="FILE", help="also write the in-process cProfile data to FILE"
    )
    args = parser.parse_args(argv)
    for key, default, quick in (("candidates", 5000, 2000), ("runs", 3, 1), ("seconds", 10.0, 3.0),
                                ("profile_hits", 3000, 1000)):  # fmt: skip
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else default)
    if args.quick:
        args.warmup = min(args.warmup, 1.0)
    bad = [setup for setup in args.setups if not SETUP.match(setup)]
    if bad:
        parser.error(f"setups look like conf, sync:2 or gthread:2x4, not {' '.join(bad)}")
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.system()} {platform.release()}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; a reference loop of pure Python "
          f"takes {python_speed():.0f} µs")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp, ExitStack() as stack:
        url, postgres = postgres_for(args.url, stack)
        run(args, url, postgres, stack, Path(tmp))
    print(
        f"\nLoad average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; the "
        f"reference loop takes {python_speed():.0f} µs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
