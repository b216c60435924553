"""RQ jobs: thin wrappers that carry ids and call services. Redis is reached only from here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from flask import Flask, current_app
from redis import Redis
from rq import Queue

SEND_JOB = "nurture.tasks.sending.send_messages"


def init_app(app: Flask) -> None:
    """Connect lazily: nothing touches Redis until the first job is enqueued."""
    app.extensions["nurture.redis"] = None


def get_redis(app: Flask | None = None) -> Redis:
    """The app's Redis connection, opened on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = app.extensions.get("nurture.redis")
    if conn is None:
        conn = Redis.from_url(app.config["REDIS_URL"])
        app.extensions["nurture.redis"] = conn
    return conn


def get_queue(app: Flask | None = None) -> Queue:
    """The queue sending jobs go to."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return Queue(app.config["QUEUE_NAME"], connection=get_redis(app))


def enqueue_send(batches: Sequence[Sequence[int]], app: Flask | None = None) -> None:
    """Hand batches of message ids to the workers: one job per batch, one Redis round trip."""
    queue = get_queue(app)
    jobs = [
        Queue.prepare_data(
            SEND_JOB,
            args=(list(ids),),
            timeout=int(timedelta(minutes=10).total_seconds()),
            result_ttl=300,
            failure_ttl=int(timedelta(days=7).total_seconds()),
        )
        for ids in batches
    ]
    queue.enqueue_many(jobs)  # in one pipeline
