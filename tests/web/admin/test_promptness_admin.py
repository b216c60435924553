"""Rejection promptness in Chromium: the dashboard raises a banner when a rejected candidate
waits past the target, the Promptness page lists who and why, and an admin moves the target
(a bad value is named)."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect

from nurture.extensions import db
from nurture.workflows.ats import handle_ats_event
from tests.web.admin.conftest import login, screenshot


def test_the_dashboard_warns_and_the_page_says_who_waits_and_why(page, live_app, clock) -> None:
    handle_ats_event(
        db.session,
        {"type": "candidate.rejected", "candidate": {
            "email": "dan@example.org", "first_name": "Dan", "recruiter_name": "Jordan Lee",
            "recruiter_email": "jordan@acme.example.com"}},
        clock.now(),
    )  # fmt: skip
    db.session.commit()
    clock.advance(timedelta(hours=50))

    login(page, "admin")
    banner = page.locator("#promptness-banner")
    expect(banner).to_contain_text("1 rejected candidate is still waiting for a first mail")
    expect(page.locator("#promptness [data-p50]")).to_have_text("—")
    screenshot(page, "dashboard-promptness")
    banner.locator("a").click()
    page.wait_for_url("**/admin/promptness#waiting")
    item = page.locator("[data-reason=no_campaign]")
    expect(item).to_contain_text("Dan")
    expect(item).to_contain_text("No active campaign starts on candidate.rejected")
    expect(item).to_contain_text("Jordan Lee")
    expect(page.locator("#per-recruiter [data-row='Jordan Lee'] [data-waiting]")).to_have_text("1")
    screenshot(page, "admin-promptness")

    page.fill("#hours", "two days")
    page.click("button:has-text('Save target')")
    expect(page.locator("#target .error")).to_contain_text("give a number of hours")
    page.fill("#hours", "72")
    page.click("button:has-text('Save target')")
    expect(page.locator(".flash.success")).to_contain_text("within 72 hours")
    expect(page.locator("#promptness-banner")).to_have_count(0)
    expect(page.locator("[data-target]")).to_have_text("72 hours")
    page.goto("/admin/")
    expect(page.locator("#promptness-banner")).to_have_count(0)
