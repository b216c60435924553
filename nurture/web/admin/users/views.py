"""Admin pages: users, roles and API tokens (admins only)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

from nurture import runtime
from nurture.core.accounts import users as user_service
from nurture.core.errors import Conflict, ValidationError
from nurture.extensions import db
from nurture.models import ApiToken, Role, User
from nurture.web.admin.access import role_required

bp = Blueprint("users", __name__, template_folder="templates")

ROLE_CHOICES = [
    SelectChoice(Role.VIEWER.value, "Viewer — reads everything, changes nothing"),
    SelectChoice(Role.EDITOR.value, "Editor — candidates, templates and campaigns"),
    SelectChoice(Role.ADMIN.value, "Admin — also users, tokens and erasure"),
]


class NewUserForm(FlaskForm):
    """Invite a colleague."""

    email = EmailField("Email", validators=[DataRequired(), Email()])
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.EDITOR.value)
    password = PasswordField("Initial password", validators=[DataRequired(), Length(min=10)])


class UserForm(FlaskForm):
    """Change a user's role or access."""

    role = SelectField("Role", choices=ROLE_CHOICES)
    active = BooleanField("Can sign in")


class NewTokenForm(FlaskForm):
    """Issue an API token."""

    user_id = SelectField("For user")
    name = StringField("What is it for?", validators=[DataRequired(), Length(max=200)])


def _page(
    new_user: NewUserForm | None = None,
    new_token: NewTokenForm | None = None,
    token: str | None = None,
    status: int = 200,
):
    users = db.session.scalars(select(User).order_by(User.email)).all()
    tokens = db.session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())).all()
    new_token = new_token or NewTokenForm(prefix="token")
    new_token.user_id.choices = [SelectChoice(str(u.id), u.email) for u in users if u.active]
    return render_template(
        "admin/users/index.html",
        users=users,
        tokens=tokens,
        new_user=new_user or NewUserForm(),
        new_token=new_token,
        edit_forms={
            u.id: UserForm(formdata=None, prefix=f"u{u.id}", role=u.role, active=u.active)
            for u in users
        },
        token=token,
    ), status


@bp.get("/users")
@role_required(Role.ADMIN)
def users():
    """Everyone who can sign in, and the API tokens."""
    return _page()


@bp.post("/users")
@role_required(Role.ADMIN)
def create_user():
    """Create a user with a role and an initial password."""
    form = NewUserForm()
    if not form.validate_on_submit():
        return _page(new_user=form, status=400)
    try:
        user = user_service.create_user(
            db.session,
            form.email.data,
            form.password.data,
            form.role.data,
            runtime.now(),
            name=form.name.data or "",
        )
    except ValidationError as exc:
        db.session.rollback()
        for field, problem in exc.fields.items():
            if field in form:
                form[field].errors = [*form[field].errors, problem]
        return _page(new_user=form, status=400)
    except Conflict as exc:
        db.session.rollback()
        form.email.errors = [str(exc)]
        return _page(new_user=form, status=400)
    db.session.commit()
    flash(f"{user.email} can now sign in as {user.role}.", "success")
    return redirect(url_for("admin.users.users"))


@bp.post("/users/<int:user_id>")
@role_required(Role.ADMIN)
def update_user(user_id: int):
    """Change a user's role or whether they can sign in."""
    user = db.get_or_404(User, user_id)
    form = UserForm(prefix=f"u{user.id}")
    if not form.validate_on_submit():
        flash("That change could not be read; try again.", "error")
        return redirect(url_for("admin.users.users"))
    try:
        user_service.update_user(db.session, user, form.role.data, form.active.data)
    except (ValidationError, Conflict) as exc:
        db.session.rollback()
        flash(getattr(exc, "message", str(exc)), "error")
        return redirect(url_for("admin.users.users"))
    db.session.commit()
    flash(f"Saved {user.email}.", "success")
    return redirect(url_for("admin.users.users"))


@bp.post("/tokens")
@role_required(Role.ADMIN)
def create_token():
    """Issue an API token; it is shown once, on this page, and stored only as a hash."""
    form = NewTokenForm(prefix="token")
    form.user_id.choices = [
        SelectChoice(str(u.id), u.email) for u in db.session.scalars(select(User))
    ]
    if not form.validate_on_submit():
        return _page(new_token=form, status=400)
    user = db.get_or_404(User, int(form.user_id.data))
    token = user_service.create_token(db.session, user, form.name.data, runtime.now())
    db.session.commit()
    return _page(token=token)


@bp.post("/tokens/<int:token_id>/revoke")
@role_required(Role.ADMIN)
def revoke_token(token_id: int):
    """Revoke an API token at once."""
    token = user_service.revoke_token(db.session, token_id)
    db.session.commit()
    if token is not None:
        flash(f"Revoked the token “{token.name}”. Anything using it now gets 401.", "success")
    return redirect(url_for("admin.users.users"))
