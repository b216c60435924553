"""The webhook endpoints the team registers in the admin or the API (checked by the models of
``webhooks.schemas``), their delivery counts, and how the API shows them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.core.errors import NotFound
from nurture.core.webhooks.events import EVENT_TYPES
from nurture.core.webhooks.schemas import EndpointChange, EndpointIn
from nurture.models.webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint


def new_secret() -> str:
    """A signing secret for an endpoint that was given none."""
    return secrets.token_urlsafe(32)


def create_endpoint(session: Session, data: EndpointIn, now: datetime) -> WebhookEndpoint:
    """Register an endpoint (a secret is generated when none is given)."""
    endpoint = WebhookEndpoint(
        url=data.url,
        secret=data.secret or new_secret(),
        description=data.description or "",
        events=data.events or [],
        active=True if data.active is None else data.active,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(
    session: Session, endpoint: WebhookEndpoint, change: EndpointChange, now: datetime
) -> WebhookEndpoint:
    """Change the fields given; deliveries already recorded keep the URL they were made for."""
    for name, value in change.changes().items():
        setattr(endpoint, name, value)
    endpoint.updated_at = now
    session.flush()
    return endpoint


def endpoint_or_404(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint with this id, or NotFound."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def endpoint_dict(
    endpoint: WebhookEndpoint, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """The API's view of an endpoint (the secret is shown only when it is created)."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events) or list(EVENT_TYPES),
        "active": endpoint.active,
        "created_at": endpoint.created_at.isoformat(),
        "deliveries": counts or {},
    }


def delivery_counts(session: Session) -> dict[int | None, dict[str, int]]:
    """Deliveries per endpoint (None: the configured one) and state, in one query."""
    rows = session.execute(
        select(WebhookDelivery.endpoint_id, WebhookDelivery.state, func.count()).group_by(
            WebhookDelivery.endpoint_id, WebhookDelivery.state
        )
    )
    counts: dict[int | None, dict[str, int]] = {}
    for endpoint_id, state, n in rows:
        counts.setdefault(endpoint_id, dict.fromkeys(DeliveryState, 0))[state] = n
    return counts


def delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    """The API's view of one delivery of the log."""
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "endpoint_id": delivery.endpoint_id,
        "url": delivery.url,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat()
        if delivery.next_attempt_at
        else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        "body": delivery.body,
    }
