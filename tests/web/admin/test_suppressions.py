"""The suppression list in the admin: add pasted addresses or a CSV, read the report, check one."""

from __future__ import annotations

import io
import re

from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Candidate, Suppression
from nurture.workflows.candidates import save_candidate
from tests.web.admin.conftest import PASSWORD, login, screenshot


def suppressed() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Suppression))


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)[1]


def signed_in(app, role: str):
    """A plain HTTP client signed in as the fixture user with ``role``."""
    client = app.test_client()
    token = csrf_of(client.get("/admin/login").text)
    answer = client.post(
        "/admin/login",
        data={"email": f"{role}@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert answer.status_code == 302
    return client


def test_paste_addresses_read_the_report_and_check_one(
    page, live_app, live_server, browser
) -> None:
    now = live_app.extensions["nurture.clock"].now()
    save_candidate(db.session, {"email": "ana@example.org", "first_name": "Ana"}, now)
    db.session.commit()
    login(page, "editor")
    page.click("nav >> text=Suppressions")
    page.wait_for_url("**/admin/suppressions")
    assert "stored only as hashes" in page.locator(".page-head").inner_text()
    assert page.locator("[data-reason=total]").inner_text() == "0"

    page.fill("#addresses", "Ana@Example.org\nnot-an-email\nbo@example.com")
    page.select_option("#reason", "bounced")
    page.click("text=Add to suppression list")
    page.wait_for_selector("#report")
    assert page.locator("#report h2").inner_text() == "Added 2 addresses · reason: bounced"
    assert page.locator("[data-count=added]").inner_text() == "2"
    assert page.locator("[data-count=rejected]").inner_text() == "1"
    assert page.locator("[data-count=candidates]").inner_text() == "1"
    rejected = page.locator("table.suppression-rejected tbody tr")
    assert rejected.count() == 1
    cells = rejected.first.locator("td").all_inner_texts()
    assert cells[:2] == ["2", "not-an-email"] and "@-sign" in cells[2]
    assert page.locator("[data-reason=bounced]").inner_text() == "2"
    assert page.locator("#addresses").input_value() == ""
    assert suppressed() == 2
    ana = db.session.scalar(select(Candidate).where(Candidate.email == "ana@example.org"))
    assert ana.status == "bounced"
    screenshot(page, "suppressions-report")

    page.fill("#check-email", "BO@example.com")
    page.click("button:has-text('Check')")
    page.wait_for_url("**/admin/suppressions?email=*")
    result = page.locator(".check-result").inner_text()
    assert "bounced" in result and "Suppressed since" in result
    since = page.locator(".check-result time").get_attribute("datetime")
    assert since.startswith("2026-03-02T09:00")
    assert "will not mail bo@example.com" in result
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "suppressions-check")

    page.fill("#check-email", "cy@example.org")
    page.click("button:has-text('Check')")
    assert "cy@example.org is not on the list" in page.locator(".check-result").inner_text()
    page.fill("#check-email", "nope")
    page.click("button:has-text('Check')")
    assert "@-sign" in page.locator("#check .error").inner_text()

    # A form posted without its CSRF token is refused before anything happens.
    answer = page.request.post(
        f"{live_server.url}/admin/suppressions",
        multipart={"addresses": "cy@example.org", "reason": "manual"},
    )
    assert answer.status == 400
    assert suppressed() == 2

    # A viewer checks addresses but has no form to add them, and a POST is refused.
    viewer = browser.new_context(
        viewport={"width": 390, "height": 900}, base_url=live_server.url
    ).new_page()
    login(viewer, "viewer")
    viewer.goto("/admin/suppressions?email=ana%40example.org")
    assert "Suppressed since" in viewer.locator(".check-result").inner_text()
    assert viewer.locator("#add").count() == 0
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = viewer.request.post(
        f"{live_server.url}/admin/suppressions",
        form={"csrf_token": token, "addresses": "cy@example.org", "reason": "manual"},
    )
    assert answer.status == 403
    viewer.context.close()
    assert suppressed() == 2


def test_a_csv_export_is_read_and_mistakes_are_shown_at_their_fields(live_app) -> None:
    client = signed_in(live_app, "editor")
    token = csrf_of(client.get("/admin/suppressions").text)
    export = b"Name,Email,Date\nAna,ana@example.org,2025-01-02\nBo,bo@,2025-01-03\n"
    answer = client.post(
        "/admin/suppressions",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "reason": "unsubscribed",
            "addresses": "",
            "file": (io.BytesIO(export), "gem-unsubscribes.csv"),
        },
    )
    assert answer.status_code == 200
    assert re.search(r"Added 1 address <span[^>]*>· reason: unsubscribed", answer.text)
    assert "read from the column “Email”" in answer.text
    assert re.search(r'<td class="num">3</td>\s*<td><code>bo@</code>', answer.text)
    assert suppressed() == 1

    both = client.post(
        "/admin/suppressions",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "reason": "manual",
            "addresses": "cy@example.org",
            "file": (io.BytesIO(export), "export.csv"),
        },
    )
    assert both.status_code == 400 and "not both" in both.text
    empty = client.post(
        "/admin/suppressions", data={"csrf_token": token, "reason": "manual", "addresses": " \n "}
    )
    assert empty.status_code == 400 and "Paste at least one address" in empty.text
    no_column = client.post(
        "/admin/suppressions",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "reason": "manual",
            "file": (io.BytesIO(b"a,b\n1,2\n"), "x.csv"),
        },
    )
    assert no_column.status_code == 422 and "No column of this file" in no_column.text
    bad_reason = client.post(
        "/admin/suppressions",
        data={"csrf_token": token, "reason": "erased", "addresses": "cy@example.org"},
    )
    assert bad_reason.status_code == 400
    assert suppressed() == 1
