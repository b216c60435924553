"""Admins manage users and API tokens; a token is shown once and works until revoked."""

from __future__ import annotations

from sqlalchemy import select

from nurture.extensions import db
from nurture.models import ApiToken, User
from tests.web.admin.conftest import login, screenshot


def test_admin_adds_a_user_issues_and_revokes_a_token(page, live_app) -> None:
    login(page, "admin")
    page.click("nav >> text=Users & tokens")
    # A bad password is refused at its field and nothing is created.
    page.fill("#email", "recruiter@example.com")
    page.fill("#password", "short")
    page.click("text=Add user")
    assert "at least 10" in page.locator(".field.has-error .error").first.inner_text()
    assert db.session.scalar(select(User).where(User.email == "recruiter@example.com")) is None

    page.fill("#email", "recruiter@example.com")
    page.fill("#name", "Riley Recruiter")
    page.select_option("#role", "editor")
    page.fill("#password", "a sensible password")
    page.click("text=Add user")
    assert "recruiter@example.com can now sign in as editor" in page.locator(".flash").inner_text()

    page.select_option("#token-user_id", label="recruiter@example.com")
    page.fill("#token-name", "Greenhouse webhook")
    page.click("text=Issue token")
    token = page.locator("[data-token]").inner_text().strip()
    screenshot(page, "users")
    stored = db.session.scalar(select(ApiToken).where(ApiToken.name == "Greenhouse webhook"))
    assert stored is not None and token not in stored.token_hash

    client = live_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        client.post(
            "/api/v1/candidates", json={"email": "a@example.org"}, headers=headers
        ).status_code
        == 201
    )
    # Reloading the page does not show the token again.
    page.goto("/admin/users")
    assert page.locator("[data-token]").count() == 0
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("tr:has-text('Greenhouse webhook') >> text=Revoke")
    page.wait_for_selector(".flash")
    assert (
        client.post(
            "/api/v1/candidates", json={"email": "b@example.org"}, headers=headers
        ).status_code
        == 401
    )


def test_the_last_admin_cannot_lock_themselves_out(page) -> None:
    login(page, "admin")
    page.goto("/admin/users")
    row = page.locator("tr:has-text('admin@example.com')")
    row.locator("select").select_option("viewer")
    row.locator("text=Save").click()
    assert "at least one active admin" in page.locator(".flash.error").inner_text()


def test_editors_and_viewers_cannot_manage_users(page, live_app) -> None:
    login(page, "editor")
    assert page.locator("nav >> text=Users & tokens").count() == 0
    answer = page.goto("/admin/users")
    assert answer.status == 403
    page.goto("/admin/")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    posted = page.request.post(
        "/admin/tokens",
        form={"token-csrf_token": token, "token-user_id": "1", "token-name": "sneaky"},
    )
    assert posted.status == 403
    assert db.session.scalar(select(ApiToken).where(ApiToken.name == "sneaky")) is None
