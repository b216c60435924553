"""Fixtures of the security tests: an app with a user of each role, and ways to be each of them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nurture.core.accounts.users import create_token, create_user
from nurture.extensions import db
from nurture.models import User

PASSWORD = "correct horse battery staple"
ROLES = ("viewer", "editor", "admin")


class FreshClient(FlaskClient):
    """A test client whose every request gets its own app context, as in production.

    The ``app`` fixture keeps one app context pushed, and a request inside it would share ``g``
    with the requests before it (Flask-WTF keeps the CSRF token there, for one).
    """

    def open(self, *args, **kwargs):  # noqa: ANN002, ANN003
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def people(app: Flask) -> dict[str, str]:
    """A user of each role (``<role>@example.com``); answers each one's API token by role."""
    app.test_client_class = FreshClient
    now = app.extensions["nurture.clock"].now()
    tokens = {}
    for role in ROLES:
        user = create_user(db.session, f"{role}@example.com", PASSWORD, role, now, name=role)
        tokens[role] = create_token(db.session, user, "tests", now)
    db.session.commit()
    return tokens


def csrf_of(html: str) -> str:
    """The CSRF token in a page's form."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)[1]


def sign_in(app: Flask, role: str, client: FlaskClient | None = None) -> FlaskClient:
    """A client signed in through the real login form as the user with ``role``."""
    client = client or app.test_client()
    token = csrf_of(client.get("/admin/login").text)
    answer = client.post(
        "/admin/login",
        data={"email": f"{role}@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 302, answer.text
    return client


def as_user(app: Flask, role: str) -> FlaskClient:
    """A client whose session is the user's, as a sign-in would leave it (no password check)."""
    user = db.session.scalar(select(User).where(User.email == f"{role}@example.com"))
    db.session.refresh(user)
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
    return client


def session_cookie(client: FlaskClient) -> str:
    """The value of the client's session cookie, as an attacker would copy it."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def with_cookie(app: Flask, value: str) -> FlaskClient:
    """A new client (another machine) presenting a copied session cookie."""
    client = app.test_client()
    client.set_cookie("session", value)
    return client


@pytest.fixture
def csrf_off(app: Flask) -> Iterator[Flask]:
    """``app`` with CSRF checks off, where a test is about something else (roles, ids)."""
    app.config["WTF_CSRF_ENABLED"] = False
    yield app
    app.config["WTF_CSRF_ENABLED"] = True
