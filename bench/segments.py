"""Segment counts and paging at scale: 1,000,000 candidates and 10,000,000 events on PostgreSQL.

Run it from the repository root:

    .venv/bin/python bench/segments.py                # a throw-away PostgreSQL cluster
    .venv/bin/python bench/segments.py --scale 0.1    # 100,000 candidates, 1,000,000 events
    .venv/bin/python bench/segments.py --url postgresql+psycopg://user@host/empty_db

It migrates an empty database with Alembic and fills it on the server with
``INSERT ... SELECT ... FROM generate_series(...)``: candidates with roles, stages, skills,
attributes and tags; three messages each across twenty campaigns; and events (opens, clicks,
replies, ratings, unsubscribes; a fifth of the opens and clicks by machines) over the past year.
The migrations' secondary indexes on those tables are dropped for the bulk load and built again
afterwards (timed), the engagement summary (``last_opened_at`` ...) is built in one aggregate
UPDATE, the score points from the events with ``engagement.rebuild_points`` (timed; a backfill
or repair: in normal running each event adds its own points), and the database is VACUUM
ANALYZEd, as autovacuum would have done.

Then, for each rule, through ``nurture.services.segments``: ``count`` and two pages of 100
member ids (the first, and a deep one by keyset after 90 % of the ids), one warm-up and then
``--runs`` timed runs each; the table shows the median and the min-max. The goal from the issue:
each count under 1 s. The script exits 0 either way.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is not a package: measure this checkout's nurture

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from flask_migrate import upgrade
from sqlalchemy import text

from nurture import create_app
from nurture.config import Config
from nurture.core.audience import engagement
from nurture.core.audience import segments as seg
from nurture.extensions import db
from nurture.runtime import FileClock

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GOAL = 1.0
PAGE = 100

# The indexes the rule kinds need beyond those of the migrations (for a migration:
#   Index("ix_candidates_role", "role"),
#   Index("ix_candidates_stage", "stage"),
#   Index("ix_candidates_skills", "skills", postgresql_using="gin"),
#   Index("ix_candidates_last_clicked", "last_clicked_at"),
#   Index("ix_candidates_last_replied", "last_replied_at"),
# on candidates (ix_candidates_last_opened and ix_candidates_engagement exist already);
#   Index("ix_events_human", "kind", "created_at", "message_id", "candidate_id",
#         postgresql_where=text("NOT machine"), sqlite_where=text("machine = 0")),
# on events, so per-campaign or per-step engagement rules read an index only; and
#   Index("ix_messages_campaign_id", "campaign_id", "id"),
# on messages, to find a campaign's (or with step_id, a step's) messages without the heap).

RULES: list[tuple[str, dict[str, Any]]] = [
    (
        "role + tag",
        {"all": [{"field": "role", "op": "eq", "value": "Backend engineer"},
                 {"tag": "silver-medalist"}]},
    ),
    ("skills any", {"skills": {"any": ["rust", "elixir"]}}),
    ("opened within 30 days", {"opened": {"within_days": 30}}),
    ("not opened in 60 days", {"not_opened": {"days": 60}}),
    (
        "score >= 3 + stage",
        {"all": [{"engagement_score": {"gte": 3}},
                 {"field": "stage", "op": "in", "value": ["onsite", "offer"]}]},
    ),
    (
        "clicked campaign 3 in 30 d (events)",
        {"clicked": {"within_days": 30, "campaign_id": 3}},
    ),
]  # fmt: skip

ROLES = [
    "Backend engineer",
    "Frontend engineer",
    "Designer",
    "Data scientist",
    "SRE",
    "Product manager",
    "Recruiter",
    "QA engineer",
    "Mobile engineer",
    "Data engineer",
]
STAGES = ["applied", "screen", "onsite", "offer", "final"]
SKILLS = ["python", "go", "rust", "java", "kotlin", "swift", "sql", "react", "vue", "figma",
          "elixir", "scala", "ruby", "php", "c", "cpp", "terraform", "k8s", "aws", "gcp",
          "spark", "airflow", "dbt", "pandas", "torch", "node", "typescript", "graphql",
          "postgres", "redis"]  # fmt: skip
TAGS = ["silver-medalist", *(f"pool-{i}" for i in range(1, 50))]
CAMPAIGNS = 20


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def build(conn: Any, candidates: int, events: int) -> None:
    """Fill an empty, migrated database on the server side."""
    messages = candidates * 3
    now = NOW.replace(tzinfo=None).isoformat(sep=" ")
    roles, stages, skills = _array(ROLES), _array(STAGES), _array(SKILLS)
    # A bulk load: no FK triggers (throw-away data, consistent by construction), and the
    # secondary indexes of the big tables built once afterwards rather than row by row.
    saved = conn.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('candidates', 'events', 'messages')"
            " AND indexname LIKE 'ix_%'"
        )
    ).all()
    steps = [
        "SET synchronous_commit = off",
        "SET session_replication_role = replica",
        *(f"DROP INDEX {name}" for name, _ in saved),
        f"INSERT INTO tags (id, name) SELECT i, ({_array(TAGS)})[i] "
        f"FROM generate_series(1, {len(TAGS)}) i",
        f"INSERT INTO campaigns (id, name, kind, status, entry_type, entry_value, sender_name, "
        "sender_email, sender_is_recruiter, send_window, exit_on, topic, entry_filter, reentry, "
        "local_time, description, created_at, updated_at) "
        f"SELECT i, 'Campaign ' || i, 'drip', 'active', 'manual', '', '', '', true, '{{}}', "
        f"'[]', 'checkins', '{{}}', 'never', false, '', '{now}', '{now}' "
        f"FROM generate_series(1, {CAMPAIGNS}) i",
        "INSERT INTO steps (id, campaign_id, position, delay_seconds, delay, template, subject, "
        "html, text, condition) "
        "SELECT (c - 1) * 3 + p + 1, c, p, 0, 'PT0S', '', '', '', '', '' "
        f"FROM generate_series(1, {CAMPAIGNS}) c, generate_series(0, 2) p",
        # Candidates: deterministic spread by id; created over two years.
        "INSERT INTO candidates (id, email, first_name, last_name, timezone, location, role, "
        "stage, rejection_reason, strengths, skills, source, recruiter_name, recruiter_email, "
        "consent_basis, consent_source, consent_at, attributes, status, engagement_points, "
        "topics, tracking_opt_out, soft_bounces, created_at, updated_at) "
        "SELECT g, 'c' || g || '@d' || (g % 500) || '.example.com', 'First' || (g % 997), "
        "'Last' || (g % 1009), 'Europe/Paris', 'City ' || (g % 40), "
        f"({roles})[1 + g % 10], ({stages})[1 + (g / 10) % 5], 'timing', '', "
        f"jsonb_build_array(({skills})[1 + (g * 7) % 30], ({skills})[1 + (g * 13) % 30], "
        f"({skills})[1 + (g * 17) % 29]), "
        "'referral', '', '', 'legitimate_interest', 'ats', NULL, "
        "jsonb_build_object('seniority', (ARRAY['junior','mid','senior','staff'])[1 + g % 4]), "
        "CASE WHEN g % 20 = 0 THEN 'unsubscribed' ELSE 'active' END, 0, '{}', false, 0, "
        f"TIMESTAMP '{now}' - (g % 730) * INTERVAL '1 day', TIMESTAMP '{now}' "
        f"FROM generate_series(1, {candidates}) g",
        # Two tags each; one in four is a silver medalist.
        "INSERT INTO candidate_tags (candidate_id, tag_id) "
        f"SELECT g, CASE WHEN g % 4 = 0 THEN 1 ELSE 2 + g % 49 END "
        f"FROM generate_series(1, {candidates}) g "
        f"UNION ALL SELECT g, 2 + (g * 7 + 3) % 49 FROM generate_series(1, {candidates}) g "
        "WHERE g % 4 = 0 OR (g * 7 + 3) % 49 <> g % 49",
        # Message m goes to candidate 1 + (m - 1) % N, so an event can name both without a join.
        "INSERT INTO messages (id, candidate_id, campaign_id, step_id, state, attempts, error, "
        "message_id, to_address, subject, queued_at, sent_at) "
        f"SELECT m, 1 + (m - 1) % {candidates}, 1 + m % {CAMPAIGNS}, "
        f"(m % {CAMPAIGNS}) * 3 + 1 + m % 3, 'sent', 1, '', '', '', '', "
        f"TIMESTAMP '{now}' - (m % 365) * INTERVAL '1 day', "
        f"TIMESTAMP '{now}' - (m % 365) * INTERVAL '1 day' "
        f"FROM generate_series(1, {messages}) m",
        # Events skew recent (random()^2); kinds: open 60 %, click 25 %, reply 3 %, rating 2 %,
        # unsubscribe 10 %; a fifth of the opens and clicks are machines.
        "INSERT INTO events (message_id, candidate_id, kind, url, machine, user_agent, value, "
        "created_at) "
        "SELECT mid, 1 + (mid - 1) % {n}, kind, '', "
        "kind IN ('open', 'click') AND random() < 0.2, '', "
        "CASE WHEN kind = 'rating' THEN (1 + floor(random() * 5))::int::text ELSE '' END, "
        f"TIMESTAMP '{now}' - (random() ^ 2) * INTERVAL '365 days' "
        "FROM (SELECT 1 + floor(random() * {m})::bigint AS mid, "
        "CASE WHEN r < 0.60 THEN 'open' WHEN r < 0.85 THEN 'click' WHEN r < 0.88 THEN 'reply' "
        "WHEN r < 0.90 THEN 'rating' ELSE 'unsubscribe' END AS kind "
        "FROM (SELECT random() AS r FROM generate_series(1, {e})) x) y".format(
            n=candidates, m=messages, e=events
        ),
        # The engagement summary, in one aggregate pass.
        "UPDATE candidates c SET last_opened_at = s.opened, last_clicked_at = s.clicked, "
        "last_replied_at = s.replied FROM (SELECT candidate_id, "
        "max(created_at) FILTER (WHERE kind = 'open') AS opened, "
        "max(created_at) FILTER (WHERE kind = 'click') AS clicked, "
        "max(created_at) FILTER (WHERE kind = 'reply') AS replied "
        "FROM events WHERE NOT machine GROUP BY candidate_id) s WHERE s.candidate_id = c.id",
        "SELECT setval(pg_get_serial_sequence('candidates', 'id'), max(id)) FROM candidates",
        "SELECT setval(pg_get_serial_sequence('events', 'id'), max(id)) FROM events",
        "SET session_replication_role = origin",
        "SET maintenance_work_mem = '512MB'",
        *(definition for _, definition in saved),
    ]
    for statement in steps:
        started = time.perf_counter()
        conn.execute(text(statement))
        conn.commit()
        label = " ".join(statement.split()[:3]).replace(" ON", "")
        print(f"  {label[:60]:<60} {time.perf_counter() - started:7.1f} s", flush=True)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, float, Any]:
    """Median, min and max seconds of ``runs`` calls after a warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times), result


def _ms(median: float, low: float, high: float) -> str:
    return f"{median * 1000:8.1f} ({low * 1000:.0f}-{high * 1000:.0f})"


def run(url: str, args: argparse.Namespace) -> None:
    """Build the data set on ``url`` and print the table."""
    candidates = int(1_000_000 * args.scale)
    events = int(10_000_000 * args.scale)
    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp:
        clock = FileClock(Path(tmp) / "clock")
        clock.set(NOW)
        app = create_app(
            Config, DATABASE_URL=url, CLOCK=str(clock.path), INSTANCE_PATH=str(Path(tmp) / "i"),
            SECRET_KEY="bench-only-secret", REDIS_URL="redis://127.0.0.1:1/0",
        )  # fmt: skip
        with app.app_context():
            upgrade()
            session = db.session
            print(f"Building {candidates:,} candidates and {events:,} events")
            started = time.perf_counter()
            with db.engine.connect() as conn:
                build(conn, candidates, events)
            step = time.perf_counter()
            engagement.rebuild_points(session)
            session.commit()
            print(f"  engagement.rebuild_points (a backfill or repair) "
                  f"{time.perf_counter() - step:14.1f} s")  # fmt: skip
            # Autovacuum would have run on a live system: the hint bits and visibility map it
            # sets are what let index-only scans skip the heap.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                step = time.perf_counter()
                conn.execute(text("VACUUM ANALYZE"))
                print(f"  {'VACUUM ANALYZE':<60} {time.perf_counter() - step:7.1f} s")
            print(f"Built in {time.perf_counter() - started:.0f} s\n")

            deep_after = int(candidates * 0.9)
            header = (f"{'rule':<36} {'members':>9}  {'count ms':>18}  {'first page ms':>18}  "
                      f"{'deep page ms':>18}")  # fmt: skip
            print(f"PostgreSQL, median (min-max) of {args.runs} runs after a warm-up")
            print(header)
            print("-" * len(header))
            slow = []
            for label, rules in RULES:
                rule = seg.validate(rules)
                c = timed(lambda rule=rule: seg.count(session, rule, NOW), args.runs)
                first = timed(lambda rule=rule: seg.page(session, rule, NOW, limit=PAGE), args.runs)
                deep = timed(
                    lambda rule=rule: seg.page(session, rule, NOW, after=deep_after, limit=PAGE),
                    args.runs,
                )
                session.rollback()
                mark = "" if c[0] < GOAL else "  over 1 s"
                if mark:
                    slow.append(label)
                print(f"{label:<36} {c[3]:>9,}  {_ms(*c[:3]):>18}  {_ms(*first[:3]):>18}  "
                      f"{_ms(*deep[:3]):>18}{mark}")  # fmt: skip
            print(f"\nGoal: each count under {GOAL:g} s — "
                  + ("met" if not slow else f"missed by: {', '.join(slow)}"))  # fmt: skip
            db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Parse options, get a database, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty PostgreSQL database (else a throw-away cluster)")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of 1,000,000 candidates / 10,000,000 events",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case")
    args = parser.parse_args(argv)
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()} {platform.release()}")  # fmt: skip
    with ExitStack() as stack:
        url = args.url
        if not url:
            from tests.support.postgres import PostgresCluster

            cluster = stack.enter_context(PostgresCluster())
            url = cluster.url
        run(url, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
