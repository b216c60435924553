"""JSON API: talent-pool health — the pool's active / cold / sunset shares over time, and the
policy that decides them."""

from __future__ import annotations

from flask import current_app, g, jsonify

from nurture import runtime
from nurture.core.audience.schemas import PoolPolicyIn, PoolQuery
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.routes import operation
from nurture.workflows import pool_health


@operation("GET", "/pool", role=Role.VIEWER, query=PoolQuery)
def pool(query: PoolQuery):
    """The pool now (active, cold, sunset and their shares), the policy, and the daily history."""
    now = runtime.now()
    rules = pool_health.policy(db.session, current_app.config)
    return jsonify(
        {
            "policy": rules.as_dict(),
            "now": pool_health.counts(db.session, now, rules).as_dict(),
            "history": [
                {"day": day.isoformat(), **found.as_dict()}
                for day, found in pool_health.history(db.session, now, query.days)
            ],
        }
    )


@operation("PUT", "/pool/policy", role=Role.ADMIN, body=PoolPolicyIn)
def pool_policy(body: PoolPolicyIn):
    """Set when a candidate is cold (days without a human open) and sunset (months)."""
    rules = pool_health.set_policy(
        db.session, body.cold_after_days, body.sunset_after_months, g.api_user, runtime.now()
    )
    db.session.commit()
    return jsonify(rules.as_dict())
