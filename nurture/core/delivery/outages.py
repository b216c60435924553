"""Waiting out a database that went away: which errors are an outage, and trying again.

A restarted PostgreSQL drops every connection; a busy SQLite file is locked for a while. Either
way the statement did not happen (or, for a COMMIT whose answer was lost, may have happened),
so what is retried here must be safe to repeat: an UPDATE to given values, a claim that
releases its own earlier attempt first.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_WAIT = 0.25  # seconds before the first retry
LONGEST_WAIT = 5.0  # the cap: a database that is back is noticed within this many seconds


# SQLite reports a missing table as an OperationalError too: only these are worth waiting for.
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached, rather than a bad statement."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        text = str(exc.orig).lower()
        return isinstance(exc, OperationalError) and any(w in text for w in _SQLITE_TRANSIENT)
    return isinstance(exc, OperationalError | InterfaceError)


def summary(exc: BaseException) -> str:
    """The first line of an error, for a log line that says which outage it was."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def reset(session: Session) -> None:
    """Roll back after a failed statement; a dead connection may refuse even that."""
    try:
        session.rollback()
    except DBAPIError:
        session.close()


def patiently(
    session: Session,
    action: Callable[[], T],
    what: str,
    *,
    wait: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``action`` until the database answers, backing off between tries; return its result.

    Errors that are not an outage (a bug, a constraint) are raised at once. Each retry is
    logged, and so is the recovery, so an operator sees the outage and its end.
    """
    delay, failures = FIRST_WAIT, 0
    rng = rng or random.Random()
    while True:
        try:
            result = action()
        except DBAPIError as exc:
            if not is_outage(exc):
                raise
            reset(session)
            failures += 1
            pause = delay * rng.uniform(0.8, 1.2)
            log.warning(
                "database unavailable while %s (%s); try %d again in %.1f s",
                what,
                summary(exc),
                failures + 1,
                pause,
            )
            wait(pause)
            delay = min(delay * 2, LONGEST_WAIT)
            continue
        if failures:
            log.warning("database back: %s done after %d failed tries", what, failures)
        return result
