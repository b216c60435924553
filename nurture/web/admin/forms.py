"""Admin forms (Flask-WTF: every one carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from nurture.core.accounts.users import MIN_PASSWORD


class LoginForm(FlaskForm):
    """Sign in with email and password."""

    email = EmailField("Email", validators=[DataRequired(), Email()])
    password = PasswordField("Password", validators=[DataRequired()])


class PasswordForm(FlaskForm):
    """Change one's own password."""

    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField(
        "New password", validators=[DataRequired(), Length(min=MIN_PASSWORD)]
    )
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new_password", message="the two do not match")],
    )
