"""JSON API: outbound webhook endpoints and their delivery log (admins only: secrets)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select

from nurture import runtime
from nurture.core.errors import NotFound, ValidationError
from nurture.core.webhooks import delivery as delivery_service
from nurture.core.webhooks import endpoints as endpoint_service
from nurture.core.webhooks.events import EVENT_TYPES, TEST_EVENT, emit
from nurture.extensions import db
from nurture.models import DeliveryState, Role, WebhookDelivery, WebhookEndpoint
from nurture.web.api.auth import ApiError, requires
from nurture.web.api.routes import bp
from nurture.web.api.views_compat import _json_body


def parse_log_filter(args: Any) -> delivery_service.LogFilter:
    """``?state=&event_type=&endpoint_id=`` of the delivery log."""
    errors = {}
    state = args.get("state", "")
    if state and state not in set(DeliveryState):
        errors["state"] = f"must be one of {', '.join(DeliveryState)}"
    event_type = args.get("event_type", "")
    if event_type and event_type not in EVENT_TYPES and event_type != TEST_EVENT:
        errors["event_type"] = f"must be one of {', '.join(EVENT_TYPES)}"
    endpoint_id = args.get("endpoint_id")
    if endpoint_id not in (None, ""):
        try:
            endpoint_id = int(endpoint_id)
        except ValueError:
            errors["endpoint_id"] = "must be the id of an endpoint"
    else:
        endpoint_id = None
    if errors:
        raise ValidationError("some filters are not valid", errors)
    return delivery_service.LogFilter(state, event_type, endpoint_id)


def _endpoint(endpoint_id: int):  # noqa: ANN202
    try:
        return endpoint_service.endpoint_or_404(db.session, endpoint_id)
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@bp.get("/webhooks/endpoints")
@requires(Role.ADMIN)
def list_endpoints():
    """Registered endpoints with their delivery counts (the configured one has id null)."""
    counts = endpoint_service.delivery_counts(db.session)
    endpoints = db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    return jsonify(
        {
            "event_types": list(EVENT_TYPES),
            "endpoints": [endpoint_service.endpoint_dict(e, counts.get(e.id)) for e in endpoints],
            "configured": {"deliveries": counts.get(None, {})},
        }
    )


@bp.post("/webhooks/endpoints")
@requires(Role.ADMIN)
def create_endpoint():
    """Register an endpoint; the answer shows its signing secret, this once."""
    endpoint = endpoint_service.create_endpoint(db.session, _json_body(), runtime.now())
    db.session.commit()
    return jsonify({**endpoint_service.endpoint_dict(endpoint), "secret": endpoint.secret}), 201


@bp.patch("/webhooks/endpoints/<int:endpoint_id>")
@requires(Role.ADMIN)
def update_endpoint(endpoint_id: int):
    """Change an endpoint's URL, events, description, secret or active flag."""
    endpoint = endpoint_service.update_endpoint(
        db.session, _endpoint(endpoint_id), _json_body(), runtime.now()
    )
    db.session.commit()
    return jsonify(endpoint_service.endpoint_dict(endpoint))


@bp.delete("/webhooks/endpoints/<int:endpoint_id>")
@requires(Role.ADMIN)
def delete_endpoint(endpoint_id: int):
    """Remove an endpoint and its delivery log."""
    db.session.delete(_endpoint(endpoint_id))
    db.session.commit()
    return jsonify({"id": endpoint_id, "deleted": True})


@bp.post("/webhooks/endpoints/<int:endpoint_id>/test")
@requires(Role.ADMIN)
def test_endpoint(endpoint_id: int):
    """Queue a signed ``webhook.test`` event to one endpoint."""
    endpoint = _endpoint(endpoint_id)
    [delivery] = emit(
        db.session, TEST_EVENT, runtime.now(), data={"hello": "from nurture"}, endpoints=[endpoint]
    )
    db.session.commit()
    return jsonify(endpoint_service.delivery_dict(delivery)), 202


@bp.get("/webhooks/deliveries")
@requires(Role.ADMIN)
def list_deliveries():
    """The delivery log, newest first (``?state=&event_type=&endpoint_id=``, 200 at most)."""
    query = delivery_service.log_query(parse_log_filter(request.args)).limit(200)
    return jsonify(
        {"deliveries": [endpoint_service.delivery_dict(d) for d in db.session.scalars(query)]}
    )


@bp.post("/webhooks/deliveries/<int:delivery_id>/retry")
@requires(Role.ADMIN)
def retry_delivery(delivery_id: int):
    """Try a pending or failed delivery again at the next scheduler pass."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    if not delivery_service.retry_now(db.session, delivery, runtime.now()):
        raise ApiError(409, "conflict", "this delivery was delivered already")
    db.session.commit()
    return jsonify(endpoint_service.delivery_dict(delivery))
