"""/healthz, /readyz and /metrics: unauthenticated probes and the Prometheus scrape."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from nurture.extensions import db
from nurture.observability.metrics import exposition
from nurture.web.ops import access
from nurture.web.ops.collector import PromptnessCollector, SystemCollector
from nurture.web.ops.readiness import readiness

bp = Blueprint("ops", __name__)
bp.record_once(lambda state: access.install(state.app))

NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/healthz")
def healthz():
    """The process is alive and serving: touches nothing else."""
    return jsonify(status="ok"), 200, NO_STORE


@bp.get("/readyz")
def readyz():
    """Database, Redis and the SMTP relay reachable (200), or a 503 naming what is not."""
    report = readiness(current_app._get_current_object()).report()  # type: ignore[attr-defined]
    return jsonify(report.as_dict()), 200 if report.ready else 503, NO_STORE


@bp.get("/metrics")
def metrics():
    """Prometheus text: every process's counters and the system's gauges (queue, workers,
    rejection promptness), read now."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    refused = access.refusal(app, request)
    if refused is not None:
        status, message = refused
        code = "unauthorized" if status == 401 else "forbidden"
        body = {"error": {"code": code, "message": message, "fields": {}}}
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return jsonify(body), status, headers | NO_STORE
    try:
        text, content_type = exposition(
            [SystemCollector(app), PromptnessCollector(app)],
            app.config.get("METRICS_DIR"),
            request.headers.get("Accept"),
        )
    finally:
        db.session.remove()
    return Response(text, content_type=content_type, headers=NO_STORE)
