"""JSON API: the suppression list — add addresses (from another tool), check one, count."""

from __future__ import annotations

from flask import jsonify

from nurture import runtime
from nurture.core.compliance import suppressions as suppression_service
from nurture.core.compliance.schemas import SuppressionQuery, SuppressionsIn
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.routes import operation


@operation("POST", "/suppressions", role=Role.EDITOR, body=SuppressionsIn)
def add_suppressions(body: SuppressionsIn):
    """Suppress addresses (an import from another tool); answers what was added, already
    there, and rejected, line by line."""
    report = suppression_service.add_addresses(db.session, body.emails, body.reason, runtime.now())
    db.session.commit()
    return jsonify(report.as_dict())


@operation("GET", "/suppressions/check", role=Role.VIEWER, query=SuppressionQuery)
def check_suppression(query: SuppressionQuery):
    """Whether an address is suppressed, why, and since when."""
    found = suppression_service.lookup(db.session, query.email)
    if found is None:
        return jsonify({"suppressed": False, "reason": None, "since": None})
    return jsonify({"suppressed": True, **found.as_dict()})


@operation("GET", "/suppressions", role=Role.VIEWER)
def suppression_counts():
    """How many addresses are suppressed, by reason (addresses are hashes: no list of them)."""
    return jsonify(suppression_service.counts(db.session))
