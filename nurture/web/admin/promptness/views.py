"""Admin page: rejection promptness — p50/p95 per campaign and recruiter, the target, who waits."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField

from nurture import runtime
from nurture.core.errors import ValidationError
from nurture.core.feedback import promptness as promptness_service
from nurture.extensions import db
from nurture.models import Role
from nurture.web.admin.access import role_required

bp = Blueprint("promptness", __name__, template_folder="templates")
PERIODS = [(7, "7 days"), (30, "30 days"), (90, "90 days")]


class TargetForm(FlaskForm):
    """The team's target, in hours."""

    hours = StringField("Target (hours)")


def current_target() -> float:
    """The target in force: the team's, else NURTURE_REJECTION_TARGET_HOURS."""
    return promptness_service.target_hours(db.session, current_app.config["REJECTION_TARGET_HOURS"])


def dashboard_panel() -> promptness_service.Promptness:
    """What the dashboard's promptness panel and banner show (last 30 days)."""
    return promptness_service.promptness(db.session, runtime.now(), current_target(), 30)


def _days() -> int:
    try:
        days = int(request.args.get("days", 30))
    except ValueError:
        return 30
    return days if days in {d for d, _ in PERIODS} else 30


def _page(form: TargetForm, status: int = 200):
    now, target, days = runtime.now(), current_target(), _days()
    waiting, total = promptness_service.waiting(db.session, now, target, days)
    if form.hours.data is None:
        form.hours.data = f"{target:g}"
    return render_template(
        "admin/promptness/index.html",
        summary=promptness_service.promptness(db.session, now, target, days),
        waiting=waiting,
        waiting_total=total,
        days=days,
        periods=PERIODS,
        form=form,
    ), status


@bp.get("")
@role_required(Role.VIEWER)
def promptness():
    """Time from rejection to first mail, and the rejected candidates still waiting."""
    return _page(TargetForm(formdata=None))


@bp.post("/target")
@role_required(Role.ADMIN)
def promptness_target():
    """Change the team's target."""
    form = TargetForm()
    if not form.validate():
        return _page(form, 400)
    try:
        hours = promptness_service.set_target(
            db.session, form.hours.data, current_user, runtime.now()
        )
    except ValidationError as exc:
        db.session.rollback()
        form.hours.errors = [f"The target {msg}." for msg in exc.fields.values()]
        return _page(form, 422)
    db.session.commit()
    flash(f"Target saved: the first mail within {hours:g} hours of a rejection.", "success")
    return redirect(url_for("admin.promptness.promptness"), code=303)
