"""The scheduler's periodic pass."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from nurture.extensions import db
from nurture.services.scheduling import TickResult, tick
from nurture.tasks import enqueue_send


def run_tick(app: Flask) -> TickResult:
    """Create due messages and enqueue every message that needs a job."""
    config = app.config
    try:
        return tick(
            db.session,
            app.extensions["nurture.clock"].now(),
            lambda ids: enqueue_send(ids, app),
            batch_size=config["SCHEDULER_BATCH_SIZE"],
            send_batch_size=config["SEND_BATCH_SIZE"],
            requeue_after=timedelta(seconds=config["REQUEUE_AFTER_SECONDS"]),
            stuck_after=timedelta(seconds=config["STUCK_AFTER_SECONDS"]),
        )
    finally:
        db.session.remove()
