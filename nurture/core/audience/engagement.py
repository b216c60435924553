"""Engagement: the per-candidate summary of what people (not machines) do with our mail.

The score: every human open, click and reply adds a weight (``WEIGHTS``) that halves every
``HALF_LIFE_DAYS``. Nothing stored ever has to decay: ``candidates.engagement_points`` holds each
weight grown by ``growth`` of the event's time (doubling every ``HALF_LIFE_DAYS`` after
``EPOCH``), and the score at any moment is the points divided by ``growth`` of that moment:

    score(now) = sum(weight * 2 ** ((event - EPOCH) / H)) / 2 ** ((now - EPOCH) / H)
               = sum(weight * 2 ** -((now - event) / H))

so a new event is one UPDATE of one row (``note_engagement``), there is no periodic job
rewriting a million rows, and a rule "score at least X" is "points at least X * growth(now)",
a constant the points index answers. ``rebuild_points`` recomputes the points from the events
(one aggregate pass), for a backfill or a repair.

Machine hits (privacy proxies, link scanners, prefetches at delivery) are recorded with
``machine=True`` by ``tracking.record_event`` (see ``is_machine``) and take no part in any of this.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Float,
    Table,
    Update,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.functions import FunctionElement

from nurture.models import Candidate, Event, EventKind
from nurture.models.base import UTCDateTime, rows_changed

HALF_LIFE_DAYS = 30.0
# Points double every half-life after this instant; a float holds them for centuries.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
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


def growth(when: datetime) -> float:
    """How much a weight counted at ``when`` has grown since ``EPOCH`` (2 ** half-lives)."""
    return float(2.0 ** ((when - EPOCH).total_seconds() / 86400 / HALF_LIFE_DAYS))


def score(points: float, now: datetime) -> float:
    """The engagement score at ``now`` of a candidate with these stored points."""
    return points / growth(now)


def score_of(candidate: Candidate, now: datetime) -> float:
    """A candidate's score at ``now``, to two decimals, as people and the API read it."""
    return round(score(candidate.engagement_points, now), 2)


def score_column(now: datetime) -> ColumnElement[float]:
    """SQL: every candidate's score at ``now`` (sorts as the points do)."""
    return Candidate.engagement_points / growth(now)


def _summary_update(kind: str) -> Update:
    """The UPDATE that counts one ``kind`` in a candidate's summary and points, built once."""
    table = cast(Table, Candidate.__table__)
    column = table.c[_LAST[kind]]
    when = bindparam("when", type_=column.type)
    return (
        table.update()
        .where(table.c.id == bindparam("candidate_id"))
        .values(
            {
                column: case((or_(column.is_(None), column < when), when), else_=column),
                table.c.engagement_points: table.c.engagement_points + bindparam("points"),
            }
        )
    )


_SUMMARY = {kind: _summary_update(kind) for kind in _LAST}


def note_engagement(session: Session, candidate_id: int, kind: str, when: datetime) -> None:
    """Count a human open, click or reply in the candidate's summary and score (one UPDATE)."""
    kind = str(kind)
    if kind not in WEIGHTS:
        return
    points = WEIGHTS[kind] * growth(when)
    session.execute(_SUMMARY[kind], {"candidate_id": candidate_id, "when": when, "points": points})
    # A Candidate loaded in this session (a reply being handled) reads the new values next.
    loaded = session.identity_map.get(identity_key(Candidate, candidate_id))
    if loaded is not None:
        session.expire(loaded, ["engagement_points", _LAST[kind]])


def _summary_many() -> Update:
    """One candidate's open and click summary and points, for ``note_engagements``.

    Each ``last_*`` moves forward only, as in ``_summary_update``; a NULL bind (no such event
    for that candidate in the batch) leaves the column as it is: ``x < NULL`` is not true.
    """
    table = cast(Table, Candidate.__table__)
    values: dict[Any, Any] = {}
    for kind in (EventKind.OPEN.value, EventKind.CLICK.value):
        column = table.c[_LAST[kind]]
        when = bindparam(kind, type_=column.type)
        values[column] = case((or_(column.is_(None), column < when), when), else_=column)
    values[table.c.engagement_points] = table.c.engagement_points + bindparam("points")
    return table.update().where(table.c.id == bindparam("candidate_id")).values(values)


_SUMMARY_MANY = _summary_many()


# PostgreSQL takes a batch's rows as arrays in one statement; one UPDATE a row elsewhere.
_SUMMARY_UNNEST = text(
    "UPDATE candidates AS c SET "
    "last_opened_at = CASE WHEN c.last_opened_at IS NULL OR c.last_opened_at < v.opened "
    "THEN v.opened ELSE c.last_opened_at END, "
    "last_clicked_at = CASE WHEN c.last_clicked_at IS NULL OR c.last_clicked_at < v.clicked "
    "THEN v.clicked ELSE c.last_clicked_at END, "
    "engagement_points = c.engagement_points + v.points "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:opened AS timestamp[]), "
    "CAST(:clicked AS timestamp[]), CAST(:points AS double precision[])) "
    "AS v(id, opened, clicked, points) WHERE c.id = v.id"
)


def _naive_utc(when: datetime | None) -> datetime | None:
    """What ``UTCDateTime`` stores, for the arrays that bypass it."""
    return None if when is None else when.astimezone(UTC).replace(tzinfo=None)


def note_engagements(session: Session, hits: Iterable[tuple[int, str, datetime]]) -> None:
    """Count many human opens and clicks, as ``note_engagement`` counts each.

    ``hits`` are (candidate id, kind, when). Per candidate its latest open and click and the
    sum of their points, in one UPDATE for them all on PostgreSQL (arrays through unnest) and
    an executemany elsewhere; in candidate order, so that two processes recording at once lock
    the rows in the same order.
    """
    summary: dict[int, dict[str, Any]] = {}
    for candidate_id, kind, when in hits:
        if kind not in (EventKind.OPEN.value, EventKind.CLICK.value):
            note_engagement(session, candidate_id, kind, when)
            continue
        row = summary.setdefault(
            candidate_id,
            {"candidate_id": candidate_id, EventKind.OPEN.value: None,
             EventKind.CLICK.value: None, "points": 0.0},
        )  # fmt: skip
        if row[kind] is None or row[kind] < when:
            row[kind] = when
        row["points"] += WEIGHTS[kind] * growth(when)
    if not summary:
        return
    rows = [summary[key] for key in sorted(summary)]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _SUMMARY_UNNEST,
            {
                "ids": [row["candidate_id"] for row in rows],
                "opened": [_naive_utc(row[EventKind.OPEN.value]) for row in rows],
                "clicked": [_naive_utc(row[EventKind.CLICK.value]) for row in rows],
                "points": [row["points"] for row in rows],
            },
        )
    else:
        session.execute(_SUMMARY_MANY, rows)
    for candidate_id in summary:
        loaded = session.identity_map.get(identity_key(Candidate, candidate_id))
        if loaded is not None:
            session.expire(loaded, ["engagement_points", *_LAST.values()])


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


def points_by_candidate() -> Any:
    """A subquery of (candidate_id, points): each candidate's points from its human events."""
    weight = case(
        *((Event.kind == kind, literal(value)) for kind, value in WEIGHTS.items()), else_=0.0
    )
    days = _age_days(Event.created_at, literal(EPOCH, UTCDateTime()))
    grown = func.exp(math.log(2) / HALF_LIFE_DAYS * days)
    return (
        select(Event.candidate_id, func.sum(weight * grown).label("points"))
        .where(Event.machine == false(), Event.kind.in_(list(WEIGHTS)))
        .group_by(Event.candidate_id)
        .subquery()
    )


def rebuild_points(session: Session) -> int:
    """Recompute every candidate's points from the events; returns how many rows it set.

    Not needed in normal running (``note_engagement`` keeps them); for a backfill after a bulk
    load, or a repair. Two set-based statements: one aggregate pass over the human events
    (UPDATE ... FROM, on PostgreSQL and SQLite alike), then zero those with none.
    """
    _ensure_exp(session)
    points = points_by_candidate()
    updated = rows_changed(
        session.execute(
            update(Candidate)
            .where(Candidate.id == points.c.candidate_id)
            .values(engagement_points=points.c.points)
            .execution_options(synchronize_session=False)
        )
    )
    engaged = exists().where(
        Event.candidate_id == Candidate.id,
        Event.machine == false(),
        Event.kind.in_(list(WEIGHTS)),
    )
    zeroed = rows_changed(
        session.execute(
            update(Candidate)
            .where(Candidate.engagement_points != 0, ~engaged)
            .values(engagement_points=0.0)
            .execution_options(synchronize_session=False)
        )
    )
    return updated + zeroed


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
    return rows_changed(session.execute(statement))
