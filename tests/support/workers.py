"""A real RQ worker for tests, run in burst mode in the test's process."""

from __future__ import annotations

from flask import Flask
from rq import SimpleWorker

from nurture.tasks import get_queue


class BurstWorker(SimpleWorker):
    """RQ's SimpleWorker without its command channel: a burst has no one to take commands
    from, and stopping the channel's thread can wait out its 60-second poll."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def drain(app: Flask) -> None:
    """Run every queued job of the app's queue, then return."""
    queue = get_queue(app)
    BurstWorker([queue], connection=queue.connection).work(burst=True)
