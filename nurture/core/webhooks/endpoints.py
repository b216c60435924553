"""The webhook endpoints the team registers in the admin or the API, checked field by field."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.core.errors import NotFound, ValidationError
from nurture.core.webhooks.events import EVENT_TYPES
from nurture.models.webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint

URL_LENGTH = 2000
SECRET_MIN = 16
SECRET_MAX = 200


def new_secret() -> str:
    """A signing secret for an endpoint that was given none."""
    return secrets.token_urlsafe(32)


def validate_endpoint(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Check an endpoint's fields, all problems at once; returns the clean values.

    With ``partial`` (an update) only the fields present are checked.
    """
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object", {"body": "expected an object"})
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if "url" in data or not partial:
        url = data.get("url")
        if not isinstance(url, str) or not url.strip():
            errors["url"] = "is required: the https:// address that receives the events"
        else:
            url = url.strip()
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                errors["url"] = "must be an http:// or https:// URL with a host"
            elif len(url) > URL_LENGTH:
                errors["url"] = f"must be at most {URL_LENGTH} characters"
            else:
                clean["url"] = url
    if data.get("secret") not in (None, ""):
        secret = data["secret"]
        if not isinstance(secret, str):
            errors["secret"] = "must be a string"
        elif not SECRET_MIN <= len(secret.strip()) <= SECRET_MAX:
            errors["secret"] = f"must be {SECRET_MIN} to {SECRET_MAX} characters"
        else:
            clean["secret"] = secret.strip()
    if "events" in data and data["events"] is not None:
        events = data["events"]
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            errors["events"] = "must be a list of event types"
        else:
            unknown = sorted(set(events) - set(EVENT_TYPES))
            if unknown:
                known = ", ".join(EVENT_TYPES)
                errors["events"] = f"unknown: {', '.join(unknown)}; known: {known}"
            else:
                clean["events"] = [e for e in EVENT_TYPES if e in set(events)]
    if "description" in data and data["description"] is not None:
        description = data["description"]
        if not isinstance(description, str):
            errors["description"] = "must be a string"
        elif len(description) > 200:
            errors["description"] = "must be at most 200 characters"
        else:
            clean["description"] = description.strip()
    if "active" in data and data["active"] is not None:
        if not isinstance(data["active"], bool):
            errors["active"] = "must be true or false"
        else:
            clean["active"] = data["active"]
    if errors:
        raise ValidationError("some fields are not valid", errors)
    return clean


def create_endpoint(session: Session, data: Any, now: datetime) -> WebhookEndpoint:
    """Register an endpoint (a secret is generated when none is given)."""
    clean = validate_endpoint(data)
    endpoint = WebhookEndpoint(
        url=clean["url"],
        secret=clean.get("secret") or new_secret(),
        description=clean.get("description", ""),
        events=clean.get("events", []),
        active=clean.get("active", True),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(
    session: Session, endpoint: WebhookEndpoint, data: Any, now: datetime
) -> WebhookEndpoint:
    """Change the fields given; deliveries already recorded keep the URL they were made for."""
    for name, value in validate_endpoint(data, partial=True).items():
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


def endpoint_dict(endpoint: WebhookEndpoint, counts: dict[str, int] | None = None) -> dict:
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
