"""Admin page: outbound webhooks — the endpoints, what each event went out as, retries."""

from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from nurture import runtime
from nurture.core.errors import ValidationError
from nurture.core.inputs import parse
from nurture.core.webhooks import delivery as delivery_service
from nurture.core.webhooks import endpoints as endpoint_service
from nurture.core.webhooks.events import EVENT_TYPES, TEST_EVENT, configured_endpoint, emit
from nurture.core.webhooks.schemas import EndpointChange, EndpointIn
from nurture.extensions import db
from nurture.models import DeliveryState, Role, WebhookDelivery, WebhookEndpoint
from nurture.web.admin.access import role_required

bp = Blueprint("webhooks", __name__, template_folder="templates")
SHOWN = 100


class EndpointForm(FlaskForm):
    """A new endpoint: its URL, the events it wants, an optional secret."""

    url = StringField("URL")
    description = StringField("Description")
    events = SelectMultipleField(
        "Events",
        choices=[SelectChoice(name, meaning) for name, meaning in EVENT_TYPES.items()],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    secret = StringField("Signing secret")
    active = BooleanField("Active", default=True)


def _log_filter() -> delivery_service.LogFilter:
    state = request.args.get("state", "")
    event_type = request.args.get("event_type", "")
    return delivery_service.LogFilter(
        state if state in set(DeliveryState) else "",
        event_type if event_type in EVENT_TYPES or event_type == TEST_EVENT else "",
    )


def _page(form: EndpointForm, secret: str = "", status: int = 200):
    filters = _log_filter()
    endpoints = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    return render_template(
        "admin/webhooks/index.html",
        form=form,
        endpoints=endpoints,
        configured=configured_endpoint(current_app.config),
        counts=endpoint_service.delivery_counts(db.session),
        deliveries=list(db.session.scalars(delivery_service.log_query(filters).limit(SHOWN))),
        filters=filters,
        states=list(DeliveryState),
        event_types=EVENT_TYPES,
        new_secret=secret,
        shown=SHOWN,
    ), status


@bp.get("")
@role_required(Role.ADMIN)
def webhooks():
    """Endpoints, the form to add one, and the delivery log with its filters."""
    return _page(EndpointForm(formdata=None))


@bp.post("/endpoints")
@role_required(Role.ADMIN)
def endpoint_create():
    """Register an endpoint; its secret is shown once, on the page that answers."""
    form = EndpointForm()
    if not form.validate():
        return _page(form, status=400)
    data = {
        "url": form.url.data or "",
        "description": form.description.data or "",
        "events": form.events.data or [],
        "secret": form.secret.data or "",
        "active": bool(form.active.data),
    }
    try:
        endpoint = endpoint_service.create_endpoint(
            db.session, parse(EndpointIn, data), runtime.now()
        )
    except ValidationError as exc:
        db.session.rollback()
        for name, problem in exc.fields.items():
            getattr(form, name, form.url).errors = [f"{problem[:1].upper()}{problem[1:]}."]
        return _page(form, status=422)
    db.session.commit()
    flash(f"Endpoint added: {endpoint.url}", "success")
    return _page(EndpointForm(formdata=None), secret=endpoint.secret, status=201)


def _endpoint_or_404(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@bp.post("/endpoints/<int:endpoint_id>/toggle")
@role_required(Role.ADMIN)
def endpoint_toggle(endpoint_id: int):
    """Pause or resume an endpoint (paused: new events are not recorded for it)."""
    endpoint = _endpoint_or_404(endpoint_id)
    endpoint_service.update_endpoint(
        db.session, endpoint, EndpointChange(active=not endpoint.active), runtime.now()
    )
    db.session.commit()
    flash(f"{endpoint.url} is {'active' if endpoint.active else 'paused'}.", "success")
    return redirect(url_for("admin.webhooks.webhooks"), code=303)


@bp.post("/endpoints/<int:endpoint_id>/delete")
@role_required(Role.ADMIN)
def endpoint_delete(endpoint_id: int):
    """Remove an endpoint and its deliveries."""
    endpoint = _endpoint_or_404(endpoint_id)
    db.session.delete(endpoint)
    db.session.commit()
    flash(f"Removed {endpoint.url}.", "success")
    return redirect(url_for("admin.webhooks.webhooks"), code=303)


@bp.post("/endpoints/<int:endpoint_id>/test")
@role_required(Role.ADMIN)
def endpoint_test(endpoint_id: int):
    """Queue a signed test event to one endpoint."""
    endpoint = _endpoint_or_404(endpoint_id)
    emit(db.session, TEST_EVENT, runtime.now(), data={"hello": "from nurture"},
         endpoints=[endpoint])  # fmt: skip
    db.session.commit()
    flash(f"A test event is on its way to {endpoint.url}; it shows in the log below.", "success")
    return redirect(url_for("admin.webhooks.webhooks"), code=303)


@bp.get("/deliveries/<int:delivery_id>")
@role_required(Role.ADMIN)
def delivery(delivery_id: int):
    """One delivery: the exact body, the headers it is sent with, the last answer."""
    found = db.session.get(WebhookDelivery, delivery_id)
    if found is None:
        abort(404)
    try:
        pretty = json.dumps(json.loads(found.body), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = found.body
    return render_template("admin/webhooks/delivery.html", delivery=found, pretty=pretty)


@bp.post("/deliveries/<int:delivery_id>/retry")
@role_required(Role.ADMIN)
def delivery_retry(delivery_id: int):
    """Try a pending or failed delivery again at the next scheduler pass."""
    found = db.session.get(WebhookDelivery, delivery_id)
    if found is None:
        abort(404)
    if delivery_service.retry_now(db.session, found, runtime.now()):
        db.session.commit()
        flash(f"Delivery {found.id} goes again within seconds.", "success")
    else:
        flash(f"Delivery {found.id} was delivered already.", "info")
    return redirect(request.form.get("next") or url_for("admin.webhooks.webhooks"), code=303)
