"""Admin page: referrals — totals, per campaign, per referrer, the latest, and a link maker."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, render_template, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from nurture import runtime
from nurture.core.addresses import normalise_email
from nurture.core.errors import ValidationError
from nurture.core.feedback import referrals as referral_service
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Referral, ReferralState, Role
from nurture.web.admin.access import role_required
from nurture.workflows.referrals import open_openings

bp = Blueprint("referrals", __name__, template_folder="templates")

PERIODS = [(30, "30 days"), (90, "90 days"), (365, "12 months")]
STATE_LABELS = {
    ReferralState.AWAITING_CONSENT: "Asked, no answer yet",
    ReferralState.IN_NETWORK: "In the network",
    ReferralState.KNOWN: "Already known",
    ReferralState.DECLINED: "Said no / expired",
    ReferralState.NOT_CONTACTABLE: "Cannot be contacted",
    ReferralState.HIRED: "Hired",
}


class LinkForm(FlaskForm):
    """A candidate's referral link, to paste into a personal mail."""

    email = StringField("Candidate's email", validators=[DataRequired()])
    opening_id = SelectField("Opening", coerce=str, choices=[])


@bp.app_template_global()
def candidate_referrals(candidate: Candidate) -> dict:
    """Who referred this candidate, and whom they referred (for their page in the admin)."""
    referrer = None
    if candidate.referred_by_id:
        referrer = db.session.get(Candidate, candidate.referred_by_id)
    made = db.session.execute(
        select(Referral, Candidate)
        .outerjoin(Candidate, Candidate.id == Referral.candidate_id)
        .where(Referral.referrer_id == candidate.id)
        .order_by(Referral.created_at.desc())
        .limit(20)
    ).all()
    return {"referrer": referrer, "made": made, "labels": STATE_LABELS}


def _page(form: LinkForm, link: str = "", status: int = 200):
    now = runtime.now()
    try:
        days = int(request.args.get("days", 90))
    except ValueError:
        days = 90
    days = days if days in {d for d, _ in PERIODS} else 90
    since = now - timedelta(days=days)
    base_url = current_app.config["BASE_URL"].rstrip("/")
    return render_template(
        "admin/referrals/index.html",
        days=days,
        periods=PERIODS,
        totals=referral_service.totals(db.session, since, base_url),
        campaigns=referral_service.per_campaign(db.session, since, base_url),
        referrers=referral_service.per_referrer(db.session, since),
        recent=referral_service.recent(db.session, limit=50),
        labels=STATE_LABELS,
        form=form,
        link=link,
    ), status


def _link_form() -> LinkForm:
    form = LinkForm()
    form.opening_id.choices = [SelectChoice("", "Any role (they choose)")] + [
        SelectChoice(str(o.id), o.title) for o in open_openings(db.session, runtime.now())
    ]
    return form


@bp.get("")
@role_required(Role.VIEWER)
def referrals():
    """Referral numbers for a period, the latest referrals and (for editors) a link maker."""
    return _page(_link_form())


@bp.post("/link")
@role_required(Role.EDITOR)
def referral_link():
    """Make the signed referral link of one candidate, for one opening or any."""
    form = _link_form()
    if not form.validate():
        return _page(form, status=400)
    try:
        email = normalise_email(form.email.data)
    except ValidationError as exc:
        form.email.errors = [f"{msg[:1].upper()}{msg[1:]}." for msg in exc.fields.values()]
        return _page(form, status=422)
    candidate = db.session.scalar(select(Candidate).where(Candidate.email == email))
    if candidate is None:
        form.email.errors = [f"No candidate has the address {email}."]
        return _page(form, status=422)
    opening_id = int(form.opening_id.data) if form.opening_id.data else None
    link = Tokens.from_config(current_app.config).referral_url(candidate.id, opening_id, None)
    return _page(form, link)
