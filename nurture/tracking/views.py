"""Short public paths reached from mail; every token is signed, a forged one changes nothing."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request

from nurture.extensions import csrf, db
from nurture.models import CandidateStatus
from nurture.services import tracking as tracking_service
from nurture.services.tracking import BadToken, Tokens

bp = Blueprint("tracking", __name__, template_folder="templates")
# One-click unsubscribe (RFC 8058) comes from mail providers with no cookie: the signed token
# in the URL is the authority, so there is nothing for a CSRF token to protect.
csrf.exempt(bp)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _tokens() -> Tokens:
    return Tokens(current_app.config["SECRET_KEY"], current_app.config["BASE_URL"].rstrip("/"))


def _now():
    return current_app.extensions["nurture.clock"].now()


def _user_agent() -> str:
    return request.headers.get("User-Agent", "")


@bp.get("/o/<token>.gif")
def open_pixel(token: str):
    """Record an open and answer with a transparent pixel."""
    try:
        tracking_service.open_message(db.session, _tokens(), token, _user_agent(), _now())
    except BadToken:
        abort(404)
    db.session.commit()
    return Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store, private"})


@bp.get("/c/<token>")
def click(token: str):
    """Record a click and redirect to the link the message contained."""
    try:
        url = tracking_service.click(db.session, _tokens(), token, _user_agent(), _now())
    except BadToken:
        abort(404)
    db.session.commit()
    return redirect(url, code=302)


def _target(token: str):
    try:
        return tracking_service.unsubscribe_target(db.session, _tokens(), token)
    except BadToken:
        abort(404)


@bp.get("/u/<token>")
@bp.get("/p/<token>")
def unsubscribe_page(token: str):
    """A small confirmation page; GET never unsubscribes (link scanners fetch every link)."""
    candidate, _ = _target(token)
    done = candidate.status in (CandidateStatus.UNSUBSCRIBED, CandidateStatus.ERASED)
    return render_template(
        "tracking/unsubscribe.html",
        done=done,
        email=candidate.email,
        company=current_app.config["COMPANY_NAME"],
        action=f"/u/{token}",
    )


@bp.post("/u/<token>")
def unsubscribe(token: str):
    """Unsubscribe at once: the RFC 8058 one-click POST, or the confirmation page's button."""
    candidate, message = _target(token)
    tracking_service.unsubscribe(db.session, candidate, message, _now())
    db.session.commit()
    if request.form.get("List-Unsubscribe") == "One-Click":
        return Response("unsubscribed\n", mimetype="text/plain")
    return render_template(
        "tracking/unsubscribe.html",
        done=True,
        email=candidate.email,
        company=current_app.config["COMPANY_NAME"],
        action=f"/u/{token}",
    )
