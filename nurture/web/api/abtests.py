"""JSON API: A/B subjects — each tested step's variants, their figures and the significance."""

from __future__ import annotations

from flask import jsonify

from nurture.core.campaigns import abtest
from nurture.extensions import db
from nurture.models import Role
from nurture.web.api.routes import operation
from nurture.web.api.views import _campaign_or_404


@operation("GET", "/campaigns/<int:campaign_id>/ab-tests", role=Role.VIEWER)
def campaign_ab_tests(campaign_id: int):
    """Per tested step: each variant's unique candidates mailed and opened (or clicked), the
    two-proportion z-test of the best against the runner-up, and the winner once decided."""
    campaign = _campaign_or_404(campaign_id)
    return jsonify(
        {
            "campaign_id": campaign.id,
            "alpha": abtest.ALPHA,
            "steps": [
                {"step_id": step.id, "position": step.position,
                 **abtest.evaluate(db.session, step).as_dict()}
                for step in campaign.steps
                if abtest.has_test(step)
            ],
        }
    )  # fmt: skip
