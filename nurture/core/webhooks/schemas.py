"""What the webhooks domain takes in: an endpoint the team registers (or changes), and the
filters of the delivery log. Every problem is reported at once, each under its field's name."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from nurture.core.inputs import Id, Input, Text, problem
from nurture.core.webhooks.delivery import LogFilter
from nurture.core.webhooks.events import EVENT_TYPES, TEST_EVENT
from nurture.models.webhooks import DeliveryState

URL_LENGTH = 2000
SECRET_MIN = 16
SECRET_MAX = 200


def _http_url(value: str) -> str:
    url = value.strip()
    if not url:
        raise problem("url", "is required: the https:// address that receives the events")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise problem("url", "must be an http:// or https:// URL with a host")
    return url


def _secret(value: str) -> str | None:
    secret = value.strip()
    if not secret:
        return None  # none given: one is generated (or, on a change, the old one is kept)
    if not SECRET_MIN <= len(secret) <= SECRET_MAX:
        raise problem("secret", f"must be {SECRET_MIN} to {SECRET_MAX} characters")
    return secret


def _known_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        known = ", ".join(EVENT_TYPES)
        raise problem("events", f"unknown: {', '.join(unknown)}; known: {known}")
    return [e for e in EVENT_TYPES if e in set(events)]  # one order, whatever was sent


def _stripped(value: str) -> str:
    return value.strip()


Url = Annotated[
    str,
    Text(URL_LENGTH),
    Field(description="The http:// or https:// address that receives the events"),
    AfterValidator(_http_url),
]
Secret = Annotated[
    str,
    Text(SECRET_MAX),
    Field(description=f"{SECRET_MIN} to {SECRET_MAX} characters; empty: one is generated"),
    AfterValidator(_secret),
]
Events = Annotated[
    list[str],
    Field(
        max_length=len(EVENT_TYPES) * 4,
        description="The event types it wants; empty: every event",
        json_schema_extra={"items": {"type": "string", "enum": list(EVENT_TYPES)}},
    ),
    AfterValidator(_known_events),
]
Description = Annotated[str, Text(200), AfterValidator(_stripped)]


class EndpointChange(Input):
    """A change to an endpoint: only the fields given (not null) change; an empty secret keeps
    the old one."""

    url: Url | None = None
    secret: Secret | None = None
    events: Events | None = None
    description: Description | None = None
    active: bool | None = None

    def changes(self) -> dict[str, object]:
        """The fields to set on the endpoint."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class EndpointIn(EndpointChange):
    """A new endpoint: its URL, and optionally a secret, the events it wants, a description,
    whether it is active (it is unless told)."""

    url: Url


class DeliveryLogQuery(Input):
    """The delivery log narrowed to a state, an event type and an endpoint (each optional)."""

    state: DeliveryState | None = None
    event_type: Literal[tuple([*EVENT_TYPES, TEST_EVENT])] | None = None  # type: ignore[valid-type]
    endpoint_id: Id | None = None

    def as_filter(self) -> LogFilter:
        """The filter the log query takes."""
        return LogFilter(self.state or "", self.event_type or "", self.endpoint_id)
