"""The bounce webhook: providers that report bounces and complaints over HTTP."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request

from nurture import runtime
from nurture.core.addresses import normalise_email
from nurture.core.errors import ValidationError
from nurture.core.feedback import inbound as inbound_service
from nurture.extensions import db
from nurture.web.api.auth import ApiError, signed_body
from nurture.web.api.views import bp

MAX_REPORTS = 1000


def _report(item: Any, where: str) -> dict[str, Any]:
    """Check one report, naming the field at fault."""
    if not isinstance(item, dict):
        raise ValidationError(f"{where} must be an object", {where: "must be an object"})
    errors: dict[str, str] = {}
    kind = item.get("type")
    if kind not in ("bounce", "complaint"):
        errors[f"{where}type"] = 'must be "bounce" or "complaint"'
    try:
        address = normalise_email(item.get("email"), f"{where}email")
    except ValidationError as exc:
        errors.update(exc.fields)
        address = ""
    bounce_type = item.get("bounce_type", "hard")
    if kind == "bounce" and bounce_type not in ("hard", "soft"):
        errors[f"{where}bounce_type"] = 'must be "hard" or "soft"'
    message_id = item.get("message_id")
    if message_id is not None and not (
        isinstance(message_id, str) and inbound_service.MESSAGE_ID.fullmatch(message_id.strip())
    ):
        errors[f"{where}message_id"] = "must be a Message-ID such as <abc@example.com>"
    diagnostic = item.get("diagnostic", "")
    if not isinstance(diagnostic, str):
        errors[f"{where}diagnostic"] = "must be a string"
    if errors:
        raise ValidationError("some fields are not valid", errors)
    return {
        "type": kind,
        "email": address,
        "hard": bounce_type == "hard",
        "message_id": (message_id or "").strip(),
        "diagnostic": diagnostic[:400],
    }


@bp.post("/bounces")
def bounce_webhook():
    """Bounces and complaints from a provider, signed with HMAC-SHA256 of the raw body."""
    secret = current_app.config.get("BOUNCE_WEBHOOK_SECRET")
    if not secret:
        raise ApiError(
            503, "not_configured", "set NURTURE_BOUNCE_WEBHOOK_SECRET to accept bounce reports"
        )
    signed_body(secret)
    body = request.get_json(silent=True)
    many = isinstance(body, list)
    items = body if many else [body]
    if not items or len(items) > MAX_REPORTS:
        raise ApiError(400, "bad_request", f"send 1 to {MAX_REPORTS} reports")
    # Check everything first, so a bad item changes nothing.
    reports = [_report(item, f"[{n}]." if many else "") for n, item in enumerate(items)]
    now = runtime.now()
    soft_limit = int(current_app.config.get("SOFT_BOUNCE_LIMIT", 3))
    results = [_apply(report, now, soft_limit) for report in reports]
    db.session.commit()
    return jsonify({"results": results} if many else results[0]), 200


def _apply(report: dict[str, Any], now, soft_limit: int) -> dict[str, Any]:
    messages = inbound_service.our_messages(db.session, [report["message_id"]])
    if report["type"] == "complaint":
        outcome = inbound_service.record_complaint(
            db.session, report["email"], now, message=messages[0] if messages else None
        )
    else:
        failure = inbound_service.Failure(
            report["email"], report["hard"], diagnostic=report["diagnostic"]
        )
        outcome = inbound_service.record_bounce(
            db.session, failure, now, soft_limit, messages=messages
        )
    return {
        "type": report["type"],
        "email": report["email"],
        "matched": bool(outcome.candidates),
        "message_matched": outcome.matched,
        "duplicate": outcome.duplicate,
        "suppressed": bool(outcome.suppressed),
    }
