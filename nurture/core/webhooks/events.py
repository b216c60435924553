"""The events nurture tells the ATS about, and recording one for every endpoint that wants it.

An event is written to ``webhook_deliveries`` in the caller's transaction: an unsubscribe that
rolls back sends nothing, one that commits is delivered even if Redis or the ATS is down now.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core import settings
from nurture.models.candidates import Candidate
from nurture.models.webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint

# type -> what it means, for the admin and the README.
EVENT_TYPES: dict[str, str] = {
    "candidate.referred": "A candidate recommended someone, who is now in the talent network",
    "candidate.replied": "A candidate answered one of our mails (auto-replies excluded)",
    "candidate.unsubscribed": "A candidate unsubscribed from all mail",
    "candidate.erased": "A candidate's personal data was erased; erase them in the ATS too",
    "candidate.rated": "A candidate rated their interview experience (1 to 5)",
}
# Sent only from the admin's "send a test event" button.
TEST_EVENT = "webhook.test"


def candidate_ref(candidate: Candidate) -> dict[str, Any]:
    """How a webhook names a candidate: the ATS matches on the email, nurture's id is kept too."""
    return {
        "id": candidate.id,
        "email": candidate.email,
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "source": candidate.source,
        "status": candidate.status,
    }


def configured_endpoint(config: Mapping[str, Any] | None = None) -> tuple[str, str] | None:
    """The (url, secret) of NURTURE_ATS_WEBHOOK_URL, or None when it is not set.

    The secret is NURTURE_ATS_WEBHOOK_SECRET, else the inbound NURTURE_ATS_SECRET: one shared
    secret per ATS is what most teams set up.
    """
    config = settings.current() if config is None else config
    url = (config.get("ATS_WEBHOOK_URL") or "").strip()
    if not url:
        return None
    secret = config.get("ATS_WEBHOOK_SECRET") or config.get("ATS_SECRET") or ""
    return url, secret


def _wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return event_type == TEST_EVENT or not endpoint.events or event_type in endpoint.events


def emit(
    session: Session,
    event_type: str,
    now: datetime,
    *,
    candidate: Candidate | None = None,
    data: dict[str, Any] | None = None,
    endpoints: list[WebhookEndpoint] | None = None,
) -> list[WebhookDelivery]:
    """Record ``event_type`` for delivery to every endpoint that subscribes to it.

    The body is fixed now, byte for byte, so every retry sends (and signs) the same bytes and
    what the delivery log shows is exactly what the ATS received.
    """
    if event_type not in EVENT_TYPES and event_type != TEST_EVENT:
        raise ValueError(f"unknown webhook event {event_type!r}")
    if candidate is not None and candidate.id is None:
        session.flush()  # a candidate created in this transaction gets its id
    event_id = f"evt_{uuid.uuid4().hex}"
    body: dict[str, Any] = {"id": event_id, "type": event_type, "created_at": now.isoformat()}
    if candidate is not None:
        body["candidate"] = candidate_ref(candidate)
    body["data"] = data or {}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    targets: list[tuple[int | None, str]] = []
    if endpoints is None:
        configured = configured_endpoint()
        if configured is not None:
            targets.append((None, configured[0]))
        endpoints = list(
            session.scalars(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.active.is_(True))
                .order_by(WebhookEndpoint.id)
            )
        )
    targets += [(e.id, e.url) for e in endpoints if _wants(e, event_type)]
    deliveries = [
        WebhookDelivery(
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            url=url,
            body=text,
            candidate_id=candidate.id if candidate is not None else None,
            state=DeliveryState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint_id, url in targets
    ]
    session.add_all(deliveries)
    return deliveries


def redacted(body: str) -> str:
    """A delivery's body with the candidate's address and names replaced by "[erased]"."""
    data = json.loads(body)
    candidate = data.get("candidate") or {}
    for key in ("email", "first_name", "last_name"):
        if candidate.get(key):
            candidate[key] = "[erased]"
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def forget_candidate(session: Session, candidate_id: int) -> int:
    """Redact the logged bodies of an erased candidate's finished deliveries; returns how many.

    Deliveries still to go keep their body: the ATS is owed those events, the erasure first.
    """
    finished = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.candidate_id == candidate_id,
            WebhookDelivery.state.in_([DeliveryState.DELIVERED, DeliveryState.FAILED]),
        )
    ).all()
    for delivery in finished:
        delivery.body = redacted(delivery.body)
    return len(finished)
