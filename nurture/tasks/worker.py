"""The RQ worker that sends mail, run by ``worker.py`` and ``nurture worker`` with their app.

It outlives its servers. Redis going away ends RQ's work loop; the worker logs it, waits
(backing off up to ``RECONNECT_CAP`` seconds) and starts a new loop on a new connection. The
database going away is waited out inside the send job (``core/delivery/outages``), and the
heartbeat that keeps the worker's claims its own (``core/delivery/leases``) beats from a thread
of its own connection. Only a signal stops it: SIGTERM or Ctrl-C is a warm shutdown (the mail
in hand is finished and recorded, the rest of its batch goes back to the queue, exit status 0);
a second one is RQ's cold shutdown.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
from types import FrameType

from flask import Flask
from redis.exceptions import RedisError
from rq import SimpleWorker
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers

from nurture import runtime
from nurture.core.delivery.leases import Lease, worker_name
from nurture.core.delivery.outages import summary
from nurture.extensions import db
from nurture.tasks import get_queue, get_redis
from nurture.tasks.sending import close_sender, sender_for

log = logging.getLogger(__name__)

RECONNECT_FIRST = 0.5  # seconds before the first reconnection to Redis
RECONNECT_CAP = 5.0  # the longest wait between two


class SendWorker(SimpleWorker):
    """RQ's in-process worker, told about a stop request the send loop can see, and tolerant of a
    Redis that vanished while it was tearing down."""

    # RQ waits up to a minute between reconnections while dequeuing; a Redis that is back
    # should be noticed within seconds.
    max_connection_wait_time = RECONNECT_CAP

    def __init__(
        self, *args: object, stopping: threading.Event | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stopping = stopping or threading.Event()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """The first SIGTERM/SIGINT: the batch in hand stops after its current mail."""
        self.stopping.set()
        super().request_stop(signum, frame)

    def unsubscribe(self) -> None:
        """RQ's, in the other order: the listening thread is told to stop *before* the
        UNSUBSCRIBE whose reply wakes it. The other way round it can take the reply, see no
        stop yet and go back to a 60-second read, holding a warm shutdown up for a minute."""
        thread = self.pubsub_thread
        if thread is None:
            return
        try:
            thread.stop(timeout=0)  # redis-py 6+: clear the flag, wait for nothing
        except TypeError:
            thread.stop()  # redis-py 5 only ever cleared the flag
        try:
            self.pubsub.unsubscribe()
        except RedisError:
            pass  # no reply coming: the thread's read ends with the connection
        thread.join(timeout=2)
        self.pubsub.close()

    def teardown(self) -> None:
        """Unregister from Redis if it is there; without it, just stop listening."""
        try:
            super().teardown()
        except RedisError as exc:
            log.warning("worker %s: could not unregister from Redis (%s)", self.name, exc)
            if self.pubsub_thread is not None:
                self.pubsub_thread.stop()


class Heartbeat(threading.Thread):
    """Beats the worker's lease every ``lease.interval`` seconds on a connection of its own."""

    def __init__(self, engine: Engine, lease: Lease) -> None:
        super().__init__(name="nurture-heartbeat", daemon=True)
        self.engine, self.lease = engine, lease
        self.done = threading.Event()
        self._failing = False

    def beat(self) -> bool:
        """One beat; True when the database took it (a failure is logged once per outage)."""
        try:
            with self.engine.begin() as connection:
                self.lease.beat(connection)
        except Exception as exc:  # noqa: BLE001 - the send path decides what a stale lease means
            if not self._failing:
                log.warning(
                    "heartbeat %s: database unavailable (%s)", self.lease.name, summary(exc)
                )
            self._failing = True
            return False
        if self._failing:
            log.warning("heartbeat %s: database back", self.lease.name)
        self._failing = False
        return True

    def run(self) -> None:
        """Beat until told to stop."""
        while not self.done.wait(self.lease.interval):
            self.beat()

    def stop(self) -> None:
        """Stop beating and forget the heartbeat: the worker holds no claims any more."""
        self.done.set()
        self.join(timeout=5)
        try:
            with self.engine.begin() as connection:
                self.lease.forget(connection)
        except Exception as exc:  # noqa: BLE001 - its rows are all final; it ages out anyway
            log.warning("heartbeat %s: not removed (%s)", self.lease.name, summary(exc))


def run_worker(app: Flask, burst: bool = False) -> None:
    """Work the send queue inside the app's context until stopped (or, with ``burst``, done).

    A SimpleWorker runs jobs in its own process: the compiled-template cache and the SMTP
    connection survive from one job to the next instead of dying with a forked work horse.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with app.app_context():
        configure_mappers()
        # Everything loaded so far (modules, mappers, the app) lives as long as the worker: out
        # of the collector's sight, so its full passes walk a batch's objects, not the imports.
        gc.collect()
        gc.freeze()
        stopping = threading.Event()
        lease = Lease(
            worker_name(), float(app.config["WORKER_LEASE_SECONDS"]), runtime.clock(app).now()
        )
        heartbeat = Heartbeat(db.engine, lease)
        app.extensions["nurture.inline_in_child"] = True  # before the template library exists
        sender = sender_for(app)
        sender.lease, sender.stopping = lease, stopping.is_set
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        _answer_signals(stopping)
        try:
            _first_beat(heartbeat, stopping)
            heartbeat.start()
            _work(app, burst, stopping)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if heartbeat.is_alive():
                heartbeat.stop()
            close_sender(app)
            db.session.remove()


SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _answer_signals(stopping: threading.Event) -> None:
    """Outside RQ's loop (starting, reconnecting) SIGTERM and Ctrl-C still stop the worker."""

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in SIGNALS:
        signal.signal(sig, stop)


def _first_beat(heartbeat: Heartbeat, stopping: threading.Event) -> None:
    """Beat once before taking any job, waiting for the database if it is not there yet."""
    delay = RECONNECT_FIRST
    while not stopping.is_set() and not heartbeat.beat():
        stopping.wait(delay)
        delay = min(delay * 2, RECONNECT_CAP)


def _work(app: Flask, burst: bool, stopping: threading.Event) -> None:
    """RQ's work loop, started again on a new connection whenever Redis took it down."""
    delay = RECONNECT_FIRST
    while not stopping.is_set():
        worker = None
        try:
            # RQ names the connection as it builds a worker: Redis must be there already.
            worker = SendWorker([get_queue(app)], connection=get_redis(app), stopping=stopping)
            worker.work(burst=burst, with_scheduler=False)
        except RedisError as exc:
            problem = f"Redis unavailable ({exc})"
        else:
            if burst or stopping.is_set():
                return
            # RQ ends its loop on an error it does not handle (a lost connection among them).
            problem = "RQ's loop ended"
        finally:
            # RQ's handlers stay behind after its loop (and would raise out of the wait below).
            _answer_signals(stopping)
        if worker is not None and worker.birth_date is not None:
            delay = RECONNECT_FIRST  # it did get going: a fresh outage starts the backoff anew
        log.warning("worker: %s; connecting again in %.1f s", problem, delay)
        stopping.wait(delay)
        delay = min(delay * 2, RECONNECT_CAP)
