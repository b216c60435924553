"""One recruiter's whole afternoon in a real browser, end to end.

Import a CSV with two bad rows, preview a starter for an imported candidate, build a two-step drip
for the import's tag, activate it, let the scheduler and a real RQ worker send through a real SMTP
server into the local capture, read the mail in the admin's mailbox, and watch the funnel move.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate
from nurture.tasks.scheduling import run_tick
from tests.support.paths import FIXTURES
from tests.web.admin.conftest import login, screenshot, work_off

FIXTURE = FIXTURES / "candidates.csv"
A_PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


@pytest.fixture
def smtp(tmp_path: Path):
    """A capture that keeps mail in the maildir the admin's mailbox reads (as `make run` does)."""
    server = SmtpCapture(tmp_path / "mailbox")
    server.start()
    yield server
    server.stop()


def run_worker(app) -> None:
    work_off(app)


def test_import_preview_build_activate_send_and_watch(page, live_app, live_server, smtp) -> None:
    login(page, "editor")

    # 1. Import: two bad rows are reported with line and field; the 18 good ones land.
    page.click("nav >> text=Imports")
    page.goto("/admin/imports/new")
    page.set_input_files("input[name=file]", str(FIXTURE))
    page.click("button:has-text('Upload and map columns')")
    page.fill("input[name=tags]", "journey")
    page.click("button:has-text('Check every row')")
    errors = page.locator("table.import-errors tbody tr")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("6")
    page.click("button:has-text('Import 18 good rows')")
    page.wait_for_url(re.compile(r"/admin/imports/\d+$"))
    run_worker(live_app)
    page.reload()
    expect(page.locator("#count-created")).to_have_text("18")
    db.session.remove()
    assert db.session.scalar(select(func.count()).select_from(Candidate)) == 18

    # 2. Preview the first step's template for one of the imported candidates.
    page.goto("/admin/templates/starter/rejection_followup")
    page.fill("input[name=candidate]", "ana.lima@")
    page.press("input[name=candidate]", "Enter")
    page.wait_for_function(
        "() => document.getElementById('frame-desktop').srcdoc.includes('Hi Ana')"
    )
    desktop = page.frame_locator("#frame-desktop").locator("body").inner_text()
    assert "Staff Engineer" in desktop

    # 3. Build a two-step drip for the tag, and activate it: 18 candidates enter.
    page.goto("/admin/campaigns/new")
    page.fill("#name", "Spring silver medalists")
    page.fill("#entry_tag", "journey")
    cards = page.locator(".step-card")
    cards.nth(0).locator("input[name$=delay_amount]").fill("0")
    cards.nth(0).locator("select[name$=template]").select_option("rejection_followup")
    page.click("text=+ Add a step")
    cards.nth(1).locator("input[name$=delay_amount]").fill("3")
    cards.nth(1).locator("select[name$=template]").select_option("talent_network_invite")
    page.click("text=Save as draft")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    campaign_url = page.url
    page.click("text=Activate…")
    assert page.locator("[data-impact=entering]").inner_text() == "18"
    page.click("button:has-text('Activate campaign')")
    expect(page.locator(".flash.success")).to_contain_text("is active")

    # 4. The scheduler's pass and a real worker send step 1 through SMTP into the capture.
    with live_app.app_context():
        assert run_tick(live_app).created == 18
    run_worker(live_app)
    assert len(smtp.wait_for(18)) == 18

    # 5. The mailbox shows exactly what Ana got.
    page.click("nav >> text=Mailbox")
    rows = page.locator("table.data tbody tr")
    expect(rows).to_have_count(18)
    page.click("tr:has-text('ana.lima@example.org') >> a")
    page.wait_for_url("**/admin/mailbox/*")
    expect(page.locator("h1")).to_contain_text("Thank you")
    page.locator("iframe.mail").scroll_into_view_if_needed()
    mail_text = page.frame_locator("iframe.mail").locator("body").inner_text()
    assert "Hi Ana" in mail_text and "Staff Engineer" in mail_text
    screenshot(page, "journey-mailbox-message")

    # 6. Ana opens it on her phone; the funnel moves.
    ana = next(m.as_email() for m in smtp.messages if m.rcpt_tos == ["ana.lima@example.org"])
    pixel = re.search(
        r'src="https?://[^/"]+(/o/[^"]+\.gif)"', ana.get_body(("html",)).get_content()
    )[1]
    live_app.extensions["nurture.clock"].advance(timedelta(minutes=7))  # a person, not a scanner
    assert page.request.get(live_server.url + pixel, headers={"User-Agent": A_PHONE}).ok
    page.goto(campaign_url)
    first = page.locator("table.funnel tbody tr").first.locator("td")
    assert first.nth(1).inner_text() == "18"
    assert first.nth(2).inner_text().split()[0] == "1"
    screenshot(page, "journey-funnel")


def test_a_viewer_cannot_edit_and_a_form_without_csrf_is_refused(page, live_app) -> None:
    login(page, "viewer")
    page.goto("/admin/campaigns")
    assert page.locator("text=New drip").count() == 0
    assert page.goto("/admin/campaigns/new").status == 403
    page.goto("/admin/")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post("/admin/imports/new", multipart={"csrf_token": token})
    assert answer.status == 403
    # An editor's form without its CSRF token is refused before any view runs.
    page.context.clear_cookies()
    login(page, "editor")
    answer = page.request.post("/admin/campaigns/new", form={"name": "No token"})
    assert answer.status == 400 and "CSRF" in answer.text()
