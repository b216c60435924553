"""What the benchmarks share: process accounting from /proc, generated candidates, figures."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from nurture.extensions import db


def _stat(pid: int) -> tuple[str, list[str]]:
    """A process's name and the fields after it in /proc/<pid>/stat (nothing once it is gone)."""
    try:
        head, _, tail = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    except OSError:
        return "", []
    return head.partition("(")[2], tail.split()


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system, and of reaped children) each process used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    return {pid: sum(map(int, fields[11:15])) / tick for pid in pids if (fields := _stat(pid)[1])}


def cpu(pids: list[int]) -> float:
    """CPU seconds these processes used so far, together."""
    return sum(cpu_by_pid(pids).values())


def children(parent: int, name: str | None = None) -> list[int]:
    """The children of ``parent`` (called ``name``, if given): PostgreSQL's backends, say."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [
        pid for pid in pids
        if (stat := _stat(pid))[1] and stat[1][1] == str(parent) and name in (None, stat[0])
    ]  # fmt: skip


def fill_candidates(last: int) -> None:
    """Candidates 1..last on the server; half with their own recruiter, three time zones."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    db.session.execute(text(
        "INSERT INTO candidates (id, email, first_name, last_name, timezone, location, role, "
        "stage, rejection_reason, strengths, skills, source, recruiter_name, recruiter_email, "
        "consent_basis, consent_source, attributes, status, engagement_points, topics, "
        "tracking_opt_out, soft_bounces, created_at, updated_at) "
        "SELECT g, 'c' || g || '@d' || (g % 500) || '.example.com', 'First' || (g % 997), "
        "'Last' || (g % 1009), (ARRAY['Europe/Paris','America/New_York','Asia/Tokyo'])"
        "[1 + g % 3], 'City ' || (g % 40), 'Backend engineer', 'onsite', 'timing', "
        "'the way you debugged the failing service under pressure', '[\"python\"]', 'ats', "
        "CASE WHEN g % 2 = 0 THEN 'Jordan Lee' ELSE '' END, "
        "CASE WHEN g % 2 = 0 THEN 'jordan@acme.example.com' ELSE '' END, "
        "'legitimate_interest', 'ats', '{}', 'active', 0, '{}', false, 0, "
        f"'{now}', '{now}' FROM generate_series(1, {last}) g"
    ))  # fmt: skip
    db.session.execute(text(
        "SELECT setval(pg_get_serial_sequence('candidates', 'id'), max(id)) FROM candidates"
    ))  # fmt: skip
    db.session.commit()


def spread(values: list[float], fmt: str = "{:,.2f}") -> str:
    """The median with the min-max, as every table here prints it."""
    low, mid, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} ({low}-{high})"


def print_stages(
    profile: cProfile.Profile,
    count: int,
    unit: str,
    stages: list[tuple[str, str, str]],
    width: int = 36,
    profile_out: str | None = None,
) -> None:
    """Cumulative µs per ``unit`` and share of each (label, file suffix, function) stage."""
    if profile_out:
        profile.dump_stats(profile_out)  # for pstats, snakeviz and the like
    stats = pstats.Stats(profile, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    total = max(row[3] for row in stats.values())
    print(f"   Under cProfile {total / count * 1e6:,.0f} µs per {unit}; by stage, cumulative "
          f"µs per {unit} and share:")  # fmt: skip
    for label, suffix, name in stages:
        # The largest, not the sum: same-named functions of a file nest (Session.commit calls
        # SessionTransaction.commit), and adding them counted the time twice.
        spent = max((row[3] for (file, _, func), row in stats.items()
                     if func == name and file.endswith(suffix)), default=0.0)  # fmt: skip
        print(f"   {label:<{width}} {spent / count * 1e6:8,.0f}  {spent / total * 100:5.1f}%")


def print_top(profile: cProfile.Profile, root: Path, rows: int = 15) -> None:
    """The ``rows`` functions with the most cumulative time, paths shortened."""
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(rows)
    body = out.getvalue().replace(str(root) + "/", "").replace(sys.prefix + "/", "")
    print(f"   Top {rows} by cumulative time:")
    lines = body[body.index("   ncalls") :].splitlines()[: rows + 1]
    print("\n".join("   " + line for line in lines))


# As TestConfig and the e2e tests: activation needs the sender identity.
SETTINGS = {
    "SECRET_KEY": "bench-only-secret",
    "BASE_URL": "https://nurture.test",
    "COMPANY_NAME": "Acme",
    "POSTAL_ADDRESS": "Acme Inc, 1 Main St, Springfield",
    "SENDER_EMAIL": "talent@acme.example.com",
}


def postgres_for(url: str | None, stack: ExitStack) -> tuple[str, Callable[[], list[int]]]:
    """``url``, or a throw-away cluster's (stopped with ``stack``), and its server's pids.

    A server elsewhere has no pids here: its CPU is not counted.
    """
    if url:
        return url, lambda: []
    from tests.support.postgres import PostgresCluster

    cluster = stack.enter_context(PostgresCluster())
    postmaster = int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])
    return cluster.url, lambda: [postmaster, *children(postmaster, "postgres")]
