"""Delivering webhooks: claim what is due, POST it signed, record the answer, back off on failure.

The signature is HMAC-SHA256 over the raw body, hex, in ``X-Nurture-Signature: sha256=<hex>`` —
the same scheme the ATS uses to sign the events it sends us, so one verifier serves both ways.
A delivery is tried ``max_attempts`` times, ``base × 2^(n-1)`` apart (at most ``cap``); a row
whose job was lost (Redis flushed, worker killed) goes back to pending after ``stuck_after``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.orm import Session

from nurture.core.webhooks.events import configured_endpoint, redacted
from nurture.models.base import rows_changed
from nurture.models.webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint

SIGNATURE_HEADER = "X-Nurture-Signature"
# What is kept of a receiver's answer in the log: enough to see the error, not a whole page.
RESPONSE_KEPT = 500


@dataclass(frozen=True)
class Answer:
    """What a POST came back with: a status (None when no HTTP answer came) and text."""

    status: int | None
    text: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        """Any 2xx counts as delivered."""
        return self.status is not None and 200 <= self.status < 300


# (url, body, headers, timeout seconds) -> Answer; the real one is core/webhooks/http.post.
Post = Callable[[str, bytes, dict[str, str], float], Answer]


@dataclass(frozen=True)
class Policy:
    """How often and how patiently to try."""

    max_attempts: int = 12
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=6)
    timeout: float = 10.0
    stuck_after: timedelta = timedelta(minutes=10)

    @classmethod
    def from_config(cls, config: Any) -> Policy:
        """``WEBHOOK_MAX_ATTEMPTS``, ``WEBHOOK_RETRY_BASE_SECONDS``, ``WEBHOOK_TIMEOUT_SECONDS``."""
        return cls(
            max_attempts=max(1, int(config.get("WEBHOOK_MAX_ATTEMPTS", 12))),
            base=timedelta(seconds=float(config.get("WEBHOOK_RETRY_BASE_SECONDS", 30))),
            timeout=float(config.get("WEBHOOK_TIMEOUT_SECONDS", 10)),
        )

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed try."""
        wait: timedelta = self.base * (2 ** max(attempts - 1, 0))
        return min(wait, self.cap)


def sign(secret: str, body: bytes) -> str:
    """The value of the signature header for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def requeue_stuck(session: Session, now: datetime, policy: Policy) -> int:
    """Deliveries claimed long ago and never finished go back to pending; returns how many."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.state == DeliveryState.SENDING,
            WebhookDelivery.claimed_at < now - policy.stuck_after,
        )
        .values(state=DeliveryState.PENDING, next_attempt_at=now)
    )
    return rows_changed(result)


def claim_due(session: Session, now: datetime, limit: int = 100) -> list[int]:
    """Move due pending deliveries to ``sending``; returns the ids this caller won.

    Two schedulers may pick the same ids: the state check in the UPDATE lets each row be
    claimed once.
    """
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING,
            or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    ids = list(session.scalars(due))
    if not ids:
        return []
    claimed = session.scalars(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids), WebhookDelivery.state == DeliveryState.PENDING)
        .values(state=DeliveryState.SENDING, claimed_at=now)
        .returning(WebhookDelivery.id)
    ).all()
    return sorted(claimed)


def _secret(session: Session, delivery: WebhookDelivery, config: Any) -> str | None:
    """The secret to sign with, as configured now (a rotated secret signs the next retry)."""
    if delivery.endpoint_id is None:
        configured = configured_endpoint(config)
        return configured[1] if configured else None
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    return endpoint.secret if endpoint is not None else None


def headers_for(delivery: WebhookDelivery, secret: str) -> dict[str, str]:
    """The headers of a delivery's POST."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "nurture-webhooks/1",
        "X-Nurture-Event": delivery.event_type,
        "X-Nurture-Event-Id": delivery.event_id,
        "X-Nurture-Delivery": str(delivery.id),
        "X-Nurture-Attempt": str(delivery.attempts),
        SIGNATURE_HEADER: sign(secret, delivery.body.encode()),
    }


def attempt(
    session: Session,
    delivery: WebhookDelivery,
    post: Post,
    now: datetime,
    policy: Policy,
    config: Any,
) -> str:
    """POST one claimed delivery and record the outcome; returns its new state."""
    secret = _secret(session, delivery, config)
    delivery.attempts += 1
    if not secret:
        answer = Answer(None, error="no signing secret: set NURTURE_ATS_WEBHOOK_SECRET")
    else:
        answer = post(
            delivery.url, delivery.body.encode(), headers_for(delivery, secret), policy.timeout
        )
    delivery.last_status = answer.status
    delivery.last_response = (answer.text or "")[:RESPONSE_KEPT]
    delivery.claimed_at = None
    if answer.ok:
        delivery.state = DeliveryState.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = ""
        delivery.next_attempt_at = None
        _redact_erased(delivery)
        return delivery.state
    reason = answer.error or f"HTTP {answer.status}"
    if delivery.attempts >= policy.max_attempts:
        delivery.state = DeliveryState.FAILED
        delivery.next_attempt_at = None
        delivery.last_error = f"gave up after {delivery.attempts} attempts: {reason}"[:2000]
        _redact_erased(delivery)
        return delivery.state
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = now + policy.delay(delivery.attempts)
    delivery.last_error = f"attempt {delivery.attempts} of {policy.max_attempts}: {reason}"[:2000]
    return delivery.state


def _redact_erased(delivery: WebhookDelivery) -> None:
    """An erasure's address leaves the log once the ATS has it (or never will)."""
    if delivery.event_type == "candidate.erased":
        delivery.body = redacted(delivery.body)


def deliver(
    session: Session,
    ids: Iterable[int],
    post: Post,
    now: Callable[[], datetime],
    policy: Policy,
    config: Any,
) -> dict[str, int]:
    """Deliver these claimed deliveries, committing each outcome; returns counts by state."""
    counts: dict[str, int] = {}
    for delivery_id in sorted(set(ids)):
        delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
        if delivery is None or delivery.state != DeliveryState.SENDING:
            continue  # delivered by another job, or put back by hand
        state = attempt(session, delivery, post, now(), policy, config)
        session.commit()
        counts[state] = counts.get(state, 0) + 1
    return counts


def retry_now(session: Session, delivery: WebhookDelivery, now: datetime) -> bool:
    """Put a pending or failed delivery up for its next attempt at once; False if delivered."""
    if delivery.state == DeliveryState.DELIVERED:
        return False
    if delivery.state == DeliveryState.FAILED:
        # One more try: it fails for good again unless the receiver now answers.
        delivery.attempts = max(delivery.attempts - 1, 0)
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = now
    delivery.claimed_at = None
    return True


@dataclass(frozen=True)
class LogFilter:
    """Which deliveries the log shows."""

    state: str = ""
    event_type: str = ""
    endpoint_id: int | None = None


def log_query(filters: LogFilter) -> Select[WebhookDelivery]:
    """The delivery log, newest first, narrowed by ``filters``."""
    conditions: list[ColumnElement[bool]] = []
    if filters.state:
        conditions.append(WebhookDelivery.state == filters.state)
    if filters.event_type:
        conditions.append(WebhookDelivery.event_type == filters.event_type)
    if filters.endpoint_id is not None:
        conditions.append(WebhookDelivery.endpoint_id == filters.endpoint_id)
    return (
        select(WebhookDelivery)
        .where(*conditions)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    )
