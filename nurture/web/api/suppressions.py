"""JSON API: the suppression list — add addresses (from another tool), check one, count."""

from __future__ import annotations

from flask import jsonify, request

from nurture import runtime
from nurture.core.compliance import suppressions as suppression_service
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.auth import requires
from nurture.web.api.views import _json_body, bp


@bp.post("/suppressions")
@requires(Role.EDITOR)
def add_suppressions():
    """Suppress a list of addresses; answers what was added, already there, and rejected."""
    body = _json_body()
    emails = body.get("emails")
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise ValidationError("emails is not valid", {"emails": "must be a list of strings"})
    if not any(e.strip() for e in emails):
        raise ValidationError("no addresses given", {"emails": "give at least one address"})
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationError("reason is not valid", {"reason": "must be a string"})
    report = suppression_service.add_addresses(db.session, emails, reason, runtime.now())
    db.session.commit()
    return jsonify(report.as_dict())


@bp.get("/suppressions/check")
@requires(Role.VIEWER)
def check_suppression():
    """Whether an address is suppressed, why, and since when."""
    found = suppression_service.lookup(db.session, request.args.get("email", ""))
    if found is None:
        return jsonify({"suppressed": False, "reason": None, "since": None})
    return jsonify({"suppressed": True, **found.as_dict()})


@bp.get("/suppressions")
@requires(Role.VIEWER)
def suppression_counts():
    """How many addresses are suppressed, by reason (addresses are hashes: no list of them)."""
    return jsonify(suppression_service.counts(db.session))
