"""Admin views: sign-in and sign-out, the dashboard, and the captured mailbox."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from pathlib import Path

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from nurture.web.admin.auth import role_required, safe_next
from nurture.web.admin.blueprint import bp
from nurture.web.admin.forms import LoginForm
from nurture.extensions import db
from nurture.models import Role
from nurture.core.feedback import analytics
from nurture.core.delivery.circuit import RedisStore, read_status
from nurture.core.accounts.users import LoginLocked, authenticate
from nurture.tasks import get_redis

_OPEN_PIXEL = re.compile(r'<img[^>]+/o/[^>]+\.gif"[^>]*>')


def _now():
    return current_app.extensions["nurture.runtime"].now()


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in; five wrong passwords lock the account for a quarter of an hour."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(db.session, form.email.data, form.password.data, _now())
        except LoginLocked as locked:
            minutes = max(1, int((locked.until - _now()).total_seconds() // 60) + 1)
            user, error = None, f"Too many failed attempts. Try again in {minutes} minutes."
        db.session.commit()
        if user is not None:
            login_user(user)
            return redirect(safe_next(request.args.get("next")))
        error = error or "That email and password do not match an account."
    return render_template("admin/login.html", form=form, error=error)


@bp.post("/logout")
def logout():
    """Sign out."""
    logout_user()
    return redirect(url_for("admin.login"))


@bp.get("/")
@role_required(Role.VIEWER)
def dashboard():
    """The health of the network, sends and opens per day, and campaigns that need attention."""
    now = _now()
    series = analytics.daily_series(db.session, now, 30)
    return render_template(
        "admin/dashboard.html",
        health=analytics.network_health(db.session, now),
        attention=analytics.campaigns_needing_attention(db.session, now),
        active=analytics.campaign_overview(db.session, now, "active"),
        # The SMTP circuit breaker's pause, when the relay keeps failing (None otherwise).
        relay_pause=read_status(RedisStore(get_redis())),
        series_chart={
            "type": "line",
            "labels": [day["day"] for day in series],
            "series": [[name, [day[name] for day in series]] for name in ("sent", "opened")],
        },
    )


def _mailbox() -> mailbox.Maildir | None:
    directory = current_app.config.get("MAILBOX_DIR")
    if not directory or not Path(directory).is_dir():
        return None
    return mailbox.Maildir(directory, create=False)


@bp.get("/mailbox")
@role_required(Role.VIEWER)
def mailbox_list():
    """Mail caught by the local SMTP capture, newest first."""
    box = _mailbox()
    items = []
    if box is not None:
        for key, message in box.iteritems():
            items.append({
                "key": key,
                "subject": str(message.get("Subject", "")),
                "to": message.get("To", ""),
                "from": message.get("From", ""),
                "delivered": message.get_date(),  # when the capture stored it
            })
    items.sort(key=lambda item: item["delivered"], reverse=True)
    return render_template("admin/mailbox.html", items=items[:200], configured=box is not None)


@bp.get("/mailbox/<key>")
@role_required(Role.VIEWER)
def mailbox_message(key: str):
    """One captured mail, rendered (in a sandboxed frame) and as source."""
    box = _mailbox()
    if box is None or key not in box:
        abort(404)
    raw = box.get_bytes(key)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    html_part = parsed.get_body(("html",))
    text_part = parsed.get_body(("plain",))
    return render_template(
        "admin/message.html",
        message=parsed,
        # Without the open pixel: a recruiter looking is not the candidate opening.
        html=_OPEN_PIXEL.sub("", html_part.get_content()) if html_part else "",
        text=text_part.get_content() if text_part else "",
        source=raw.decode("utf-8", "replace"),
    )
