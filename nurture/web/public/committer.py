"""Group commit of tracking hits: many request threads, one transaction, each answer after it.

A web process serves many opens and clicks at once (gunicorn's gthread workers, the development
server's threads). Each hit is a tiny write, and a transaction per hit spends most of its time on
the round trips and the COMMIT, not on the rows. So a request thread hands its hit to this
process's committer thread and waits: the committer takes every hit that is waiting, writes them
in one transaction (``core.feedback.tracking.record_hits``: one multi-row INSERT, one summary
UPDATE per candidate, one COMMIT) and only then wakes their threads. While it commits, the next
hits queue up and go together in the next transaction: under load the batches grow by themselves,
with no timer that would delay a lone hit.

Nothing is acknowledged and then lost: a request thread answers "recorded" only once the
transaction holding its hit has committed. When the database fails, the committer retries the
batch on a fresh connection until the hits' deadline (``TRACKING_COMMIT_TIMEOUT``) is near, so a
restart of PostgreSQL that takes a second loses nothing; a batch that fails for another reason (a
row the database refuses) is retried hit by hit, so one bad hit spoils only itself. A hit whose
deadline passes is answered as not recorded (see ``hits.py`` for what the candidate gets then).
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from queue import Empty, SimpleQueue

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from nurture.core.feedback.tracking import Hit, record_hits

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What became of a hit."""

    HUMAN = "human"  # committed, a person's open or click
    MACHINE = "machine"  # committed, marked as a proxy's or scanner's
    NO_MESSAGE = "no message"  # signed by us, but its message is gone: nothing to record
    NOT_RECORDED = "not recorded"  # the database failed or was too slow: not in the database

    @property
    def recorded(self) -> bool:
        """Whether the hit is in the database (committed)."""
        return self in (Outcome.HUMAN, Outcome.MACHINE)


_WAITING, _TAKEN, _WITHDRAWN = range(3)


class _Pending:
    """A hit, its deadline, and the lock its request thread waits on."""

    __slots__ = ("hit", "deadline", "done", "outcome", "state")

    def __init__(self, hit: Hit, deadline: float) -> None:
        self.hit, self.deadline = hit, deadline
        self.done = threading.Lock()
        self.done.acquire()  # released by the committer once the outcome is known
        self.outcome = Outcome.NOT_RECORDED
        self.state = _WAITING

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.release()


Recorder = Callable[[Session, Sequence[Hit]], list[bool | None]]


class GroupCommitter:
    """Records this process's tracking hits, as many per transaction as are waiting.

    ``record(hit)`` blocks until the hit is committed (or given up on) and returns its
    ``Outcome``. With ``group=False`` it records the hit in the calling thread instead, with the
    same retries: for SQLite in memory, whose one connection cannot be shared with a thread.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        timeout: float = 2.0,
        group: bool = True,
        max_batch: int = 500,
        idle_seconds: float = 60.0,
        recorder: Recorder = record_hits,
    ) -> None:
        self.engine, self.timeout, self.group = engine, timeout, group
        self.max_batch, self.idle_seconds, self.recorder = max_batch, idle_seconds, recorder
        # How long a request thread waits past its deadline for a committer stuck inside a
        # statement (a database that stopped answering) before answering "not recorded".
        self.grace = min(0.5, timeout / 2)
        self.batches = 0  # transactions committed: read by tests and the benchmark
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the thread's start and stop, and hit states
        self._queue: SimpleQueue[_Pending | None] = SimpleQueue()  # None: stop
        self._thread: threading.Thread | None = None
        # The committer thread's own connection (a thread-local: a committer that stops
        # when idle closes its own while its successor opens another).
        self._local = threading.local()

    # --- the request side -----------------------------------------------------------------

    def record(self, hit: Hit, session: Session | None = None) -> Outcome:
        """Store ``hit``; back once it is committed, or when the database failed or was slow.

        With ``session``, in that session's transaction on this thread, committing it.
        """
        pending = _Pending(hit, time.monotonic() + self.timeout)
        if session is not None or not self.group:
            self._commit([pending], session)
            return pending.outcome
        if self._pid != os.getpid():  # forked after use (gunicorn --preload): a thread of our own
            self._reset()
        with self._lock:  # with the put, so the thread cannot stop between the check and it
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="nurture-tracking-committer", daemon=True
                )
                self._thread.start()
            self._queue.put(pending)
        if pending.done.acquire(timeout=self.timeout + self.grace):
            return pending.outcome
        with self._lock:
            if pending.state == _WAITING:  # never picked up: make sure it never will be
                pending.state = _WITHDRAWN
        log.warning("tracking hit not recorded: no commit within %.1f s", self.timeout)
        return Outcome.NOT_RECORDED

    def close(self, timeout: float = 10.0) -> None:
        """Stop the committer thread once the hits queued so far are committed, and close its
        connection (a test's database is about to go; a server just exits)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout)

    # --- the committer thread -------------------------------------------------------------

    def _run(self) -> None:
        """Take what is waiting, commit it, wake its threads; stop after a quiet minute."""
        self._local.is_committer, self._local.connection = True, None
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.idle_seconds)
            except Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        break
                continue
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            with self._lock:
                batch = [pending for pending in batch if pending.state == _WAITING]
                for pending in batch:
                    pending.state = _TAKEN
            if not batch:
                continue
            try:
                self._commit(batch)
            except BaseException:  # never leave a thread waiting, never let the committer die
                log.exception("tracking committer failed on a batch of %d hits", len(batch))
                for pending in batch:
                    if pending.done.locked():
                        pending.finish(Outcome.NOT_RECORDED)
        if self._local.connection is not None:  # quiet for a while: give it back
            self._local.connection.close()

    def _commit(self, batch: list[_Pending], session: Session | None = None) -> None:
        """One transaction for the batch, retried while the database is away, then finish it."""
        deadline, pause = min(pending.deadline for pending in batch), 0.05
        while True:
            try:
                outcomes = self._transaction([pending.hit for pending in batch], session)
                break
            except OperationalError as error:  # lost connection, restart, lock timeout, deadlock
                if time.monotonic() + pause >= deadline:
                    log.warning("tracking: %d hits not recorded: %s", len(batch), error)
                    for pending in batch:
                        pending.finish(Outcome.NOT_RECORDED)
                    return
                time.sleep(pause)  # the database is restarting or busy: wait a little for it
                pause = min(pause * 2, 0.5)
            except DBAPIError as error:
                if len(batch) == 1:
                    log.error("tracking hit not recorded: %s", error)
                    batch[0].finish(Outcome.NOT_RECORDED)
                    return
                for pending in batch:  # one hit the database refuses spoils only itself
                    self._commit([pending])
                return
        self.batches += 1
        for pending, human in zip(batch, outcomes, strict=True):
            pending.finish(
                Outcome.NO_MESSAGE
                if human is None
                else (Outcome.HUMAN if human else Outcome.MACHINE)
            )

    def _transaction(self, hits: list[Hit], session: Session | None) -> list[bool | None]:
        if session is None and getattr(self._local, "is_committer", False):
            held: Connection | None = self._local.connection
            # The committer keeps its connection from batch to batch: no pool checkout and
            # no pre-ping round trip each time.
            if held is None:
                held = self._local.connection = self.engine.connect()
            try:
                with Session(bind=held) as own, own.begin():
                    return self.recorder(own, hits)
            except BaseException:
                # Whatever broke, the next try starts on a fresh connection.
                self._local.connection = None
                held.close()
                raise
        if session is None:
            with Session(self.engine) as own, own.begin():
                return self.recorder(own, hits)
        try:
            outcomes = self.recorder(session, hits)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return outcomes
