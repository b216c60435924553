"""JSON API: outbound webhook endpoints and their delivery log (admins only: secrets)."""

from __future__ import annotations

from flask import jsonify
from sqlalchemy import select

from nurture import runtime
from nurture.core.errors import NotFound
from nurture.core.webhooks import delivery as delivery_service
from nurture.core.webhooks import endpoints as endpoint_service
from nurture.core.webhooks.events import EVENT_TYPES, TEST_EVENT, emit
from nurture.core.webhooks.schemas import DeliveryLogQuery, EndpointChange, EndpointIn
from nurture.extensions import db
from nurture.models import Role, WebhookDelivery, WebhookEndpoint
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    try:
        return endpoint_service.endpoint_or_404(db.session, endpoint_id)
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@operation("GET", "/webhooks/endpoints", role=Role.ADMIN)
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


@operation("POST", "/webhooks/endpoints", role=Role.ADMIN, body=EndpointIn, ok=(201,))
def create_endpoint(body: EndpointIn):
    """Register an endpoint; the answer shows its signing secret, this once."""
    endpoint = endpoint_service.create_endpoint(db.session, body, runtime.now())
    db.session.commit()
    return jsonify({**endpoint_service.endpoint_dict(endpoint), "secret": endpoint.secret}), 201


@operation("PATCH", "/webhooks/endpoints/<int:endpoint_id>", role=Role.ADMIN, body=EndpointChange)
def update_endpoint(endpoint_id: int, body: EndpointChange):
    """Change an endpoint's URL, events, description, secret or active flag."""
    endpoint = endpoint_service.update_endpoint(
        db.session, _endpoint(endpoint_id), body, runtime.now()
    )
    db.session.commit()
    return jsonify(endpoint_service.endpoint_dict(endpoint))


@operation("DELETE", "/webhooks/endpoints/<int:endpoint_id>", role=Role.ADMIN)
def delete_endpoint(endpoint_id: int):
    """Remove an endpoint and its delivery log."""
    db.session.delete(_endpoint(endpoint_id))
    db.session.commit()
    return jsonify({"id": endpoint_id, "deleted": True})


@operation("POST", "/webhooks/endpoints/<int:endpoint_id>/test", role=Role.ADMIN, ok=(202,))
def test_endpoint(endpoint_id: int):
    """Queue a signed ``webhook.test`` event to one endpoint."""
    endpoint = _endpoint(endpoint_id)
    [delivery] = emit(
        db.session, TEST_EVENT, runtime.now(), data={"hello": "from nurture"}, endpoints=[endpoint]
    )
    db.session.commit()
    return jsonify(endpoint_service.delivery_dict(delivery)), 202


@operation("GET", "/webhooks/deliveries", role=Role.ADMIN, query=DeliveryLogQuery)
def list_deliveries(query: DeliveryLogQuery):
    """The delivery log, newest first (``?state=&event_type=&endpoint_id=``, 200 at most)."""
    query = delivery_service.log_query(query.as_filter()).limit(200)
    return jsonify(
        {"deliveries": [endpoint_service.delivery_dict(d) for d in db.session.scalars(query)]}
    )


@operation("POST", "/webhooks/deliveries/<int:delivery_id>/retry", role=Role.ADMIN, errors=(409,))
def retry_delivery(delivery_id: int):
    """Try a pending or failed delivery again at the next scheduler pass."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    if not delivery_service.retry_now(db.session, delivery, runtime.now()):
        raise ApiError(409, "conflict", "this delivery was delivered already")
    db.session.commit()
    return jsonify(endpoint_service.delivery_dict(delivery))
