"""Engagement: the per-candidate summary of what people (not machines) do with our mail.

The score: every human open, click and reply adds a weight (``WEIGHTS``) that halves every
``HALF_LIFE_DAYS``. It is kept in ``candidates.engagement_score`` in two set-based ways:

- ``note_engagement`` (called by ``tracking.record_event`` and the reply reader) adds the full
  weight of a new event and moves ``last_opened_at`` / ``last_clicked_at`` / ``last_replied_at``
  forward, in one UPDATE of one row;
- ``recompute_scores`` (a periodic job, e.g. hourly or nightly) recomputes every score from the
  events themselves, decayed to ``now``: one aggregate pass over the window's events.

Between two runs of the job a score is therefore the decayed score at the last run plus the
undecayed weights since: a little high, never low, and exact again after the next run. Events older
than ``WINDOW_DAYS`` weigh less than 0.02 % of a new one and are left out.

Machine hits (privacy proxies, link scanners, prefetches at delivery) are recorded with
``machine=True`` by ``tracking.record_event`` (see ``is_machine``) and take no part in any of this.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from nurture.models import Candidate, Event, EventKind
from nurture.models.base import UTCDateTime

HALF_LIFE_DAYS = 30.0
WINDOW_DAYS = 365
WEIGHTS = {EventKind.OPEN.value: 1.0, EventKind.CLICK.value: 3.0, EventKind.REPLY.value: 5.0}
# Security scanners fetch every link (and image) within seconds of delivery; no person does.
SCANNER_SECONDS = 10
# Apple Mail Privacy Protection and similar proxies prefetch images at delivery, announcing
# themselves with no user agent or a bare "Mozilla/5.0".
PREFETCH_SECONDS = 120
_GENERIC_AGENT = re.compile(r"^\s*(Mozilla/\d\.\d)?\s*$", re.IGNORECASE)

_LAST = {
    EventKind.OPEN.value: "last_opened_at",
    EventKind.CLICK.value: "last_clicked_at",
    EventKind.REPLY.value: "last_replied_at",
}


def is_machine(kind: str, user_agent: str, sent_at: datetime | None, now: datetime) -> bool:
    """True for an open or click made by a mail system rather than by the person, judged by
    when it came (relative to the message's ``sent_at``) and how it announced itself."""
    if kind not in (EventKind.OPEN, EventKind.CLICK) or sent_at is None:
        return False
    seconds = (now - sent_at).total_seconds()
    if seconds < SCANNER_SECONDS:
        return True
    return (
        kind == EventKind.OPEN
        and seconds < PREFETCH_SECONDS
        and bool(_GENERIC_AGENT.match(user_agent or ""))
    )


def note_engagement(session: Session, candidate_id: int, kind: str, when: datetime) -> None:
    """Count a human open, click or reply in the candidate's summary and score (one UPDATE)."""
    kind = str(kind)
    if kind not in WEIGHTS:
        return
    column = getattr(Candidate, _LAST[kind])
    statement = (
        update(Candidate)
        .where(Candidate.id == candidate_id)
        .values(
            {
                _LAST[kind]: case((or_(column.is_(None), column < when), when), else_=column),
                "engagement_score": Candidate.engagement_score + WEIGHTS[kind],
            }
        )
        .execution_options(synchronize_session="fetch")
    )
    session.execute(statement)


class _age_days(FunctionElement[float]):  # noqa: N801 - used like a SQL function
    """Days (fractional) from a timestamp column to a given time."""

    type = Float()
    inherit_cache = True
    name = "age_days"


@compiles(_age_days)
def _age_days_postgresql(element: _age_days, compiler: Any, **kw: Any) -> str:
    now, column = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({now} - {column})) / 86400.0)"


@compiles(_age_days, "sqlite")
def _age_days_sqlite(element: _age_days, compiler: Any, **kw: Any) -> str:
    now, column = (compiler.process(c, **kw) for c in element.clauses)
    return f"(julianday({now}) - julianday({column}))"


def _ensure_exp(session: Session) -> None:
    """SQLite builds without the math functions get exp() from Python."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    try:
        connection.exec_driver_sql("SELECT exp(0)")
    except OperationalError:
        connection.connection.driver_connection.create_function(  # type: ignore[union-attr]
            "exp", 1, math.exp, deterministic=True
        )


def _human_recent(now: datetime) -> list[Any]:
    return [
        Event.machine == false(),
        Event.kind.in_(list(WEIGHTS)),
        Event.created_at >= now - timedelta(days=WINDOW_DAYS),
    ]


def scores_by_candidate(now: datetime) -> Any:
    """A subquery of (candidate_id, score): each candidate's decayed score from its events."""
    weight = case(
        *((Event.kind == kind, literal(value)) for kind, value in WEIGHTS.items()), else_=0.0
    )
    age = _age_days(literal(now, UTCDateTime()), Event.created_at)
    decay = func.exp(-math.log(2) / HALF_LIFE_DAYS * age)
    return (
        select(Event.candidate_id, func.sum(weight * decay).label("score"))
        .where(*_human_recent(now))
        .group_by(Event.candidate_id)
        .subquery()
    )


def recompute_scores(session: Session, now: datetime) -> int:
    """Decay every score to ``now``, from the events; returns how many candidates changed.

    Two set-based statements, meant for a periodic job: one aggregate pass over the window's
    events (UPDATE ... FROM, on PostgreSQL and SQLite alike), then zero the scores of those with
    no event left in the window."""
    _ensure_exp(session)
    scores = scores_by_candidate(now)
    updated = session.execute(
        update(Candidate)
        .where(Candidate.id == scores.c.candidate_id)
        .values(engagement_score=scores.c.score)
        .execution_options(synchronize_session=False)
    ).rowcount
    recent = exists().where(Event.candidate_id == Candidate.id, *_human_recent(now))
    zeroed = session.execute(
        update(Candidate)
        .where(Candidate.engagement_score != 0, ~recent)
        .values(engagement_score=0.0)
        .execution_options(synchronize_session=False)
    ).rowcount
    return (updated or 0) + (zeroed or 0)


def rebuild_summary(session: Session) -> int:
    """Recompute ``last_opened_at``/``last_clicked_at``/``last_replied_at`` of every candidate
    from the events (a backfill or repair; the normal path is ``note_engagement``).

    After a bulk load on PostgreSQL run ANALYZE first: without statistics the planner picks a
    nested loop that takes minutes instead of seconds.
    """

    def latest(kind: str) -> Any:
        return (
            select(func.max(Event.created_at))
            .where(
                Event.candidate_id == Candidate.id,
                Event.kind == kind,
                Event.machine == false(),
            )
            .correlate(Candidate)
            .scalar_subquery()
        )

    statement = (
        update(Candidate)
        .values({column: latest(kind) for kind, column in _LAST.items()})
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount or 0
