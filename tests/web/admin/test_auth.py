"""Signing in, roles and CSRF, in a real browser and over plain HTTP."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import LoginThrottle
from tests.web.admin.conftest import PASSWORD, login, screenshot


def test_sign_in_and_out(page) -> None:
    page.goto("/admin/")
    assert "/admin/login" in page.url and "next=" in page.url
    screenshot(page, "login")
    login(page, "viewer")
    assert page.locator("h1").first.inner_text() == "Talent network"
    screenshot(page, "dashboard")
    page.click("text=Sign out")
    page.wait_for_url("**/admin/login")


def test_wrong_password_is_refused_and_five_throttle_this_client(page, live_app) -> None:
    for _ in range(5):
        page.goto("/admin/login")
        page.fill("input[name=email]", "editor@example.com")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        assert page.locator("[role=alert]").inner_text().startswith("That email and password")
    # Throttled: even the right password is refused from here for now (other clients are not).
    page.fill("input[name=email]", "editor@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert "Too many attempts from here" in page.locator("[role=alert]").inner_text()
    assert db.session.scalar(select(func.count()).select_from(LoginThrottle)) == 2


def test_next_never_leads_off_site(page) -> None:
    page.goto("/admin/login?next=//evil.example.org/x")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.url.startswith(page.context.pages[0].url.split("/admin")[0])
    assert "evil" not in page.url


def test_a_form_posted_without_its_csrf_token_is_refused(live_app) -> None:
    client = live_app.test_client()
    answer = client.post("/admin/login", data={"email": "admin@example.com", "password": PASSWORD})
    assert answer.status_code == 400
    assert "session" not in answer.headers.get("Set-Cookie", "") or "CSRF" in answer.text


def test_session_cookie_is_httponly_and_samesite(live_app) -> None:
    client = live_app.test_client()
    page = client.get("/admin/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    answer = client.post(
        "/admin/login",
        data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
