"""The RQ worker that sends mail, run by ``worker.py`` and ``nurture worker`` with their app."""

from __future__ import annotations

from flask import Flask
from rq import SimpleWorker
from sqlalchemy.orm import configure_mappers

from nurture.tasks import get_queue, get_redis
from nurture.tasks.sending import close_sender


def run_worker(app: Flask, burst: bool = False) -> None:
    """Push the app's context once and work the send queue.

    A SimpleWorker runs jobs in its own process: the compiled-template cache and the SMTP
    connection survive from one job to the next instead of dying with a forked work horse.
    """
    app.app_context().push()
    configure_mappers()
    worker = SimpleWorker([get_queue(app)], connection=get_redis(app))
    try:
        worker.work(burst=burst, with_scheduler=False)
    finally:
        close_sender(app)
