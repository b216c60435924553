"""Admin page: talent-pool health — the pool's shares now and over time, who was sunset, and
the policy (cold after N days, sunset after M months); and the dashboard's panel."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField

from nurture import runtime
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import Role
from nurture.web.admin.access import role_required
from nurture.workflows import pool_health

bp = Blueprint("pool", __name__, template_folder="templates")
DAYS = 90


class PolicyForm(FlaskForm):
    """When a candidate is cold, and when they are sunset."""

    cold_after_days = StringField("Cold after (days without a human open)")
    sunset_after_months = StringField("Sunset after (months without engagement)")


def _rules() -> pool_health.PoolPolicy:
    return pool_health.policy(db.session, current_app.config)


def _bars(days: int) -> list[dict[str, Any]]:
    return [
        {"day": day, "counts": found, "active": found.share(found.active) or 0,
         "cold": found.share(found.cold) or 0, "sunset": found.share(found.sunset) or 0}
        for day, found in pool_health.history(db.session, runtime.now(), days)
    ]  # fmt: skip


@bp.app_context_processor
def _panel() -> dict[str, Any]:
    def pool_panel() -> dict[str, Any]:
        """What the dashboard's pool-health panel shows: the shares now and over 30 days."""
        now = runtime.now()
        return {"now": pool_health.counts(db.session, now, _rules()), "bars": _bars(30)}

    return {"pool_panel": pool_panel}


def _page(form: PolicyForm, status: int = 200):
    rules = _rules()
    if form.cold_after_days.data is None:
        form.cold_after_days.data = str(rules.cold_after_days)
        form.sunset_after_months.data = str(rules.sunset_after_months)
    return render_template(
        "admin/pool/index.html",
        now=pool_health.counts(db.session, runtime.now(), rules),
        rules=rules,
        bars=_bars(DAYS),
        days=DAYS,
        sunset=pool_health.recently_sunset(db.session),
        form=form,
    ), status


@bp.get("")
@role_required(Role.VIEWER)
def pool():
    """The pool's active / cold / sunset shares now and day by day, and who was sunset."""
    return _page(PolicyForm(formdata=None))


@bp.post("/policy")
@role_required(Role.ADMIN)
def pool_policy():
    """Change when candidates count as cold and when they are sunset."""
    form = PolicyForm()
    if not form.validate():
        return _page(form, 400)
    try:
        rules = pool_health.set_policy(
            db.session,
            form.cold_after_days.data,
            form.sunset_after_months.data,
            current_user,
            runtime.now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        for name, problem in exc.fields.items():
            getattr(form, name).errors = [problem[0].upper() + problem[1:] + "."]
        return _page(form, 422)
    db.session.commit()
    flash(
        f"Policy saved: cold after {rules.cold_after_days} days, sunset after "
        f"{rules.sunset_after_months} months.",
        "success",
    )
    return redirect(url_for("admin.pool.pool"), code=303)
