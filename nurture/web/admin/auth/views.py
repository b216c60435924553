"""Admin pages: sign-in and sign-out."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from nurture import runtime
from nurture.core.accounts.users import LoginLocked, authenticate
from nurture.extensions import db
from nurture.web.admin.access import safe_next
from nurture.web.admin.forms import LoginForm

bp = Blueprint("auth", __name__, template_folder="templates")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in; five wrong passwords lock the account for a quarter of an hour."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(db.session, form.email.data, form.password.data, runtime.now())
        except LoginLocked as locked:
            minutes = max(1, int((locked.until - runtime.now()).total_seconds() // 60) + 1)
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
    return redirect(url_for("admin.auth.login"))
