"""The bounce webhook: providers that report bounces and complaints over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app, jsonify

from nurture import runtime
from nurture.core.feedback import inbound as inbound_service
from nurture.core.feedback.schemas import BounceReport, BounceReports
from nurture.extensions import db
from nurture.web.api.routes import operation


@operation("POST", "/bounces", signed="BOUNCE_WEBHOOK_SECRET", body=BounceReports)
def bounce_webhook(body: BounceReports):
    """Bounces and complaints from a provider, signed with HMAC-SHA256 of the raw body."""
    # Every report was checked before any is applied, so a bad item changes nothing.
    now = runtime.now()
    soft_limit = int(current_app.config.get("SOFT_BOUNCE_LIMIT", 3))
    results = [_apply(report, now, soft_limit) for report in body.reports]
    db.session.commit()
    return jsonify({"results": results} if body.many else results[0]), 200


def _apply(report: BounceReport, now: datetime, soft_limit: int) -> dict[str, Any]:
    messages = inbound_service.our_messages(db.session, [(report.message_id or "").strip()])
    if report.type == "complaint":
        outcome = inbound_service.record_complaint(
            db.session, report.email, now, message=messages[0] if messages else None
        )
    else:
        failure = inbound_service.Failure(
            report.email, report.bounce_type == "hard", diagnostic=report.diagnostic[:400]
        )
        outcome = inbound_service.record_bounce(
            db.session, failure, now, soft_limit, messages=messages
        )
    return {
        "type": report.type,
        "email": report.email,
        "matched": bool(outcome.candidates),
        "message_matched": outcome.matched,
        "duplicate": outcome.duplicate,
        "suppressed": bool(outcome.suppressed),
    }
