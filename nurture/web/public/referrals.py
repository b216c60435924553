"""Public referral pages: a candidate recommends someone (/f/<token>); the person recommended
says yes or no to hearing from us (/f/consent/<token>). Phone first; the signed token in the
URL is the authority, and each form carries its own signed, timestamped form token."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from nurture import runtime
from nurture.core.compliance import preferences as preference_service
from nurture.core.errors import ValidationError
from nurture.core.feedback import referrals as referral_links
from nurture.core.tokens import BadToken, Tokens
from nurture.extensions import csrf, db
from nurture.models import Candidate, ReferralState
from nurture.workflows import referrals as referral_service

bp = Blueprint(
    "referrals",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/f/static",
)
csrf.exempt(bp)  # no session on these pages: the form tokens below stand in for it

RELATIONS = [
    ("", "Choose…"),
    ("worked together", "We worked together"),
    ("studied together", "We studied together"),
    ("friend", "A friend"),
    ("other", "Another way"),
]


def _tokens() -> Tokens:
    return Tokens.from_config(current_app.config)


def _company() -> str:
    return current_app.config["COMPANY_NAME"]


def _target(token: str) -> referral_links.LinkTarget:
    try:
        return referral_links.link_target(db.session, _tokens(), token)
    except BadToken:
        abort(404)


def _guard(token: str, action: str) -> None:
    """Refuse a POST that did not come from our own page for this token and action, lately."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        abort(403)
    try:
        preference_service.check_form_token(
            _tokens(), token, action, request.form.get("form_token", ""), runtime.now()
        )
    except BadToken:
        abort(400, "This form has expired or did not come from our page: reload and try again.")


def _form_page(token: str, target, values=None, errors=None, status: int = 200):  # noqa: ANN001
    now = runtime.now()
    return render_template(
        "referrals/refer.html",
        token=token,
        referrer=target.referrer,
        opening=target.opening,
        openings=[] if target.opening else referral_service.open_openings(db.session, now),
        relations=RELATIONS,
        values=values or {"consent": referral_service.CONSENT_REQUESTED},
        errors=errors or {},
        form_token=preference_service.form_token(_tokens(), token, "refer", now),
        company=_company(),
    ), status


@bp.get("/f/<token>")
def refer_page(token: str):
    """The referral form, or the thank-you after it was sent."""
    target = _target(token)
    if request.args.get("done") == "1":
        return render_template(
            "referrals/thanks.html",
            token=token,
            referrer=target.referrer,
            opening=referral_service.opening_label(target.opening),
            company=_company(),
        )
    return _form_page(token, target)


@bp.post("/f/<token>")
def refer(token: str):
    """Record the recommendation, then thank the referrer (post/redirect/get)."""
    target = _target(token)
    _guard(token, "refer")
    fields = ("first_name", "last_name", "email", "relation", "note", "consent", "opening_id")
    values = {name: request.form.get(name, "") for name in fields}
    try:
        referral_service.refer(
            db.session, target.referrer, target.opening, target.message, values, runtime.now()
        )
    except ValidationError as exc:
        db.session.rollback()
        return _form_page(token, target, values, exc.fields, 422)
    db.session.commit()
    return redirect(url_for("tracking.referrals.refer_page", token=token, done=1), code=303)


# --- the person recommended ------------------------------------------------------------------


def _consent_target(token: str):  # noqa: ANN202
    try:
        return referral_links.consent_target(db.session, _tokens(), token)
    except BadToken:
        abort(404)


def _consent_page(token: str, candidate, referral, done: str = ""):  # noqa: ANN001
    referrer = db.session.get(Candidate, referral.referrer_id)
    now = runtime.now()
    return render_template(
        "referrals/consent.html",
        token=token,
        candidate=candidate,
        referral=referral,
        referrer_name=(referrer.full_name if referrer else "") or "Someone who knows your work",
        opening=referral.opening_title or referral_links.ANY_OPENING,
        state=referral.state,
        states=ReferralState,
        done=done,
        forms={
            action: preference_service.form_token(_tokens(), token, action, now)
            for action in ("yes", "no")
        },
        company=_company(),
    )


@bp.get("/f/consent/<token>")
def consent_page(token: str):
    """Who recommended them and for what; yes or no is one more click, never this GET."""
    candidate, referral = _consent_target(token)
    return _consent_page(token, candidate, referral, request.args.get("done", ""))


@bp.post("/f/consent/<token>/<answer>")
def consent_answer(token: str, answer: str):
    """Yes: they join the talent network. No: their details are deleted for good."""
    if answer not in ("yes", "no"):
        abort(404)
    candidate, referral = _consent_target(token)
    _guard(token, answer)
    if answer == "yes":
        referral_service.confirm(db.session, candidate, referral, runtime.now())
    else:
        referral_service.decline(db.session, candidate, referral, runtime.now())
    db.session.commit()
    return redirect(url_for("tracking.referrals.consent_page", token=token, done=answer), code=303)
