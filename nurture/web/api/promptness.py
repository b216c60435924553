"""JSON API: rejection promptness — time to first mail, the target, who is waiting; its gauges
for a Prometheus that scrapes with a bearer token."""

from __future__ import annotations

from flask import Response, current_app, g, jsonify
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from nurture import runtime
from nurture.core.feedback import promptness as promptness_service
from nurture.core.feedback.schemas import PromptnessQuery, TargetIn
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.routes import operation
from nurture.web.ops.collector import PromptnessCollector


@operation("GET", "/promptness", role=Role.VIEWER, query=PromptnessQuery)
def promptness(query: PromptnessQuery):
    """p50/p95 from rejection to first mail, overall, per campaign and per recruiter, and the
    rejected candidates waiting past the target (``?days=``, 30 by default)."""
    now = runtime.now()
    target = promptness_service.target_hours(
        db.session, current_app.config["REJECTION_TARGET_HOURS"]
    )
    summary = promptness_service.promptness(db.session, now, target, query.days)
    waiting, total = promptness_service.waiting(db.session, now, target, query.days)
    return jsonify(
        {
            **summary.as_dict(),
            "waiting": {"count": total, "candidates": [w.as_dict() for w in waiting]},
        }
    )


@operation("PUT", "/promptness/target", role=Role.ADMIN, body=TargetIn)
def promptness_target(body: TargetIn):
    """Set the team's target: ``{"hours": 48}``."""
    hours = promptness_service.set_target(db.session, body.hours, g.api_user, runtime.now())
    db.session.commit()
    return jsonify({"target_hours": hours})


@operation("GET", "/metrics", role=Role.VIEWER, media="text/plain")
def metrics():
    """Prometheus text: the rejection-promptness gauges (the ops /metrics carries them too)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PromptnessCollector(current_app._get_current_object()))  # type: ignore[attr-defined]
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
