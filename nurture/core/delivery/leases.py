"""Worker leases: a sending worker's heartbeat in the database, and the claims it keeps alive.

A worker claims rows under its name (``messages.claimed_by``) and beats every few seconds. The
scheduler hands a worker's rows back to the queue once its beat is older than the lease, so a
killed worker's mail is sent again within a minute, while a live worker's rows are never taken
from it. Ages are measured by the database's clock (``db_epoch``): workers and schedulers on
different machines, or a test's injected clock, cannot disagree about them.

The worker's side keeps its promise by the monotonic clock: it sends only while its last beat
*started* less than half a lease ago, and when a beat arrives more than a whole lease after the
previous one (the database was away, the process was frozen), it counts a lapse: its claims may
have been handed back, so it gives up the batch it holds instead of sending it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Double, Select, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from nurture.models import WorkerHeartbeat
from nurture.models.base import rows_changed


class db_epoch(FunctionElement[float]):  # noqa: N801 - reads as a SQL function
    """The database server's current time in seconds since the Unix epoch."""

    type = Double()
    inherit_cache = True


@compiles(db_epoch)
def _epoch_default(element: db_epoch, compiler: object, **kw: object) -> str:
    return "(julianday('now') - 2440587.5) * 86400.0"  # SQLite, and anything like it


@compiles(db_epoch, "postgresql")
def _epoch_postgresql(element: db_epoch, compiler: object, **kw: object) -> str:
    # clock_timestamp(), not now(): a long transaction must not make a beat look old.
    return "EXTRACT(EPOCH FROM clock_timestamp())::double precision"


def worker_name() -> str:
    """A name no other worker process has had: host, pid and a random part."""
    return f"{socket.gethostname()[:60]}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class Lease:
    """One worker process's heartbeat and what it may conclude from it (thread-safe)."""

    def __init__(
        self,
        name: str,
        seconds: float,
        started_at: datetime,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds <= 0:
            raise ValueError("a lease lasts a positive number of seconds")
        self.name, self.seconds, self.started_at = name, float(seconds), started_at
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # When the last beat the database took was *sent* (monotonic), None before the first.
        self._renewed: float | None = None
        # Lapses so far: a batch claimed before the latest one may no longer be ours.
        self.lapses = 0

    @property
    def interval(self) -> float:
        """How often to beat: four beats a lease, so one or two lost ones do not matter."""
        return self.seconds / 4

    def age(self) -> float:
        """Seconds since the last successful beat was sent (infinite before the first)."""
        renewed = self._renewed
        return float("inf") if renewed is None else self._monotonic() - renewed

    def fresh(self) -> bool:
        """Whether this worker may send under its claims now, without beating first."""
        return self.age() < self.seconds / 2

    def beat(self, connection: Connection | Session) -> None:
        """Write the heartbeat (the caller commits) and note it, with any lapse it reveals."""
        sent = self._monotonic()
        values = {"beat_at": db_epoch()}
        found = connection.execute(
            update(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name).values(**values)
        )
        if not rows_changed(found):
            connection.execute(
                insert(WorkerHeartbeat).values(
                    name=self.name,
                    host=socket.gethostname()[:255],
                    pid=os.getpid(),
                    started_at=self.started_at,
                    **values,
                )
            )
        self._beaten(sent)

    def _beaten(self, sent: float) -> None:
        with self._lock:
            previous = self._renewed
            if previous is not None and self._monotonic() - previous >= self.seconds:
                self.lapses += 1
            if previous is None or sent > previous:
                self._renewed = sent

    def forget(self, connection: Connection | Session) -> None:
        """Remove the heartbeat (a clean shutdown: the worker holds no claims any more)."""
        connection.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name))
        with self._lock:
            self._renewed = None


def live_workers(lease_seconds: float) -> Select[str]:
    """The names of workers whose heartbeat is younger than the lease, by the database's clock."""
    return select(WorkerHeartbeat.name).where(
        WorkerHeartbeat.beat_at > db_epoch() - float(lease_seconds)
    )


def forget_dead_workers(session: Session, older_than_seconds: float = 86400.0) -> int:
    """Drop heartbeats that stopped long ago (their rows went back to the queue long before)."""
    result = session.execute(
        delete(WorkerHeartbeat).where(
            WorkerHeartbeat.beat_at < db_epoch() - float(older_than_seconds)
        )
    )
    return rows_changed(result)
