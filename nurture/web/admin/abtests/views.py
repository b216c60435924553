"""Admin page: A/B subject tests of every campaign — the variants' rates, the p-value of the
best against the runner-up, and the winner (or "no clear winner") once decided."""

from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from nurture.core.campaigns import abtest
from nurture.extensions import db
from nurture.models import Campaign, Role, Step, StepVariant
from nurture.web.admin.access import role_required

bp = Blueprint("abtests", __name__, template_folder="templates")


@bp.get("")
@role_required(Role.VIEWER)
def ab_tests():
    """Every step that tests subject lines, running ones first, with its figures."""
    rows = db.session.execute(
        select(Step, Campaign)
        .join(Campaign, Campaign.id == Step.campaign_id)
        .where(Step.ab_sample_percent > 0, Step.id.in_(select(StepVariant.step_id)))
        .order_by(Step.ab_decided_at.is_not(None), Campaign.name, Step.position)
        .limit(100)
    ).all()
    tests = [
        {"step": step, "campaign": campaign, "result": abtest.evaluate(db.session, step)}
        for step, campaign in rows
    ]
    return render_template("admin/abtests/index.html", tests=tests, alpha=abtest.ALPHA)
