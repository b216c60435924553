"""Admin pages: sign-in, sign-out and changing one's password."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.exc import IntegrityError

from nurture import runtime
from nurture.core.accounts import users as user_service
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.web.admin.access import safe_next
from nurture.web.admin.forms import LoginForm, PasswordForm

bp = Blueprint("auth", __name__, template_folder="templates")

WRONG = "That email and password do not match an account."


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in; a client that keeps guessing wrong waits a quarter of an hour (see users.py)."""
    form = LoginForm()
    error, status = None, 200
    if form.validate_on_submit():
        now = runtime.now()
        try:
            user = user_service.authenticate(
                db.session, form.email.data, form.password.data, now, request.remote_addr or ""
            )
        except user_service.LoginThrottled as throttled:
            minutes = max(1, int((throttled.until - now).total_seconds() // 60) + 1)
            # The same words for every address, known or not: they tell nobody who has an account.
            user, status = None, 429
            error = f"Too many attempts from here. Try again in {minutes} minutes."
        try:
            db.session.commit()
        except IntegrityError:  # a failure racing this one counted the same key first
            db.session.rollback()
        if user is not None:
            login_user(user)
            return redirect(safe_next(request.args.get("next")))
        error = error or WRONG
    return render_template("admin/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    """Sign out, everywhere: every copy of every session cookie of this user stops working."""
    if current_user.is_authenticated:
        user_service.revoke_sessions(current_user)
        db.session.commit()
    logout_user()
    return redirect(url_for("admin.auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Change one's own password; other sessions of the account end, this one stays."""
    form = PasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            user_service.change_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except ValidationError as exc:
            db.session.rollback()
            for field, problem in exc.fields.items():
                form[field].errors = [*form[field].errors, problem]
            status = 422
        else:
            db.session.commit()
            login_user(current_user._get_current_object())  # this session, with the new nonce
            flash("Password changed. Other sessions of your account are signed out.", "success")
            return redirect(url_for("admin.auth.account"))
    elif request.method == "POST":
        status = 422
    return render_template("admin/account.html", form=form), status
