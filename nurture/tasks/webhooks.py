"""Webhook deliveries: the scheduler claims what is due and hands the ids to a worker."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Flask, current_app

from nurture import runtime
from nurture.core.webhooks import delivery as delivery_service
from nurture.core.webhooks.http import post
from nurture.extensions import db
from nurture.tasks import get_queue

log = logging.getLogger(__name__)

DELIVER_JOB = "nurture.tasks.webhooks.deliver_webhooks"
# Deliveries per job: one slow receiver holds up at most this many.
JOB_SIZE = 20


def schedule_webhooks(app: Flask, now: datetime) -> list[int]:
    """Requeue lost deliveries, claim the due ones and enqueue jobs for them; returns the ids."""
    policy = delivery_service.Policy.from_config(app.config)
    delivery_service.requeue_stuck(db.session, now, policy)
    ids = delivery_service.claim_due(db.session, now)
    db.session.commit()  # claimed before the jobs exist: a second scheduler skips them
    if ids:
        queue = get_queue(app)
        timeout = int(policy.timeout * JOB_SIZE + 60)
        queue.enqueue_many(
            [
                queue.prepare_data(
                    DELIVER_JOB,
                    args=(ids[i : i + JOB_SIZE],),
                    timeout=timeout,
                    result_ttl=300,
                    failure_ttl=int(timedelta(days=7).total_seconds()),
                )
                for i in range(0, len(ids), JOB_SIZE)
            ]
        )
    return ids


def deliver_webhooks(delivery_ids: list[int]) -> dict[str, int]:
    """POST these claimed deliveries; returns counts by the state each ended in."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return delivery_service.deliver(
            db.session,
            delivery_ids,
            post,
            runtime.clock(app).now,
            delivery_service.Policy.from_config(app.config),
            app.config,
        )
    finally:
        db.session.remove()
