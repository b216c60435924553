"""Talent-pool health in Chromium: the dashboard's panel and the Pool health page show the
active / cold / sunset shares over time from the daily snapshots, list who was sunset and why,
and an admin changes the policy (a bad value is named, nothing saved)."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from nurture.extensions import db
from nurture.models import Candidate
from nurture.tasks.scheduling import run_periodic
from nurture.workflows.candidates import save_candidate
from nurture.workflows.pool_health import set_policy
from nurture.workflows.retention import confirm_consent
from tests.web.admin.conftest import login, screenshot


def _say_yes(name: str, now) -> None:  # noqa: ANN001
    candidate = db.session.scalar(select(Candidate).where(Candidate.email == f"{name}@example.org"))
    confirm_consent(candidate, now)


def test_the_pool_page_shows_shares_over_time_and_the_policy(page, live_app, clock) -> None:
    set_policy(db.session, 30, 2, None, clock.now())
    for name in ("ana", "bo", "cy", "dee"):
        save_candidate(
            db.session, {"email": f"{name}@example.org", "first_name": name.title()}, clock.now()
        )
    db.session.commit()
    # The scheduler's pass on four days (0, 31, 45, 62), people saying yes in between.
    for wait, yes, run in ((0, None, True), (20, "ana", False), (11, None, True),
                           (14, "dee", True), (17, None, True)):  # fmt: skip
        clock.advance(timedelta(days=wait))
        if yes:
            _say_yes(yes, clock.now())
            db.session.commit()
        if run:
            run_periodic(live_app, {})
    db.session.remove()

    login(page, "viewer")
    panel = page.locator("#pool-health")
    expect(panel.locator("[data-share-active]")).to_have_text("25.0%")
    expect(panel.locator("[data-share-cold]")).to_have_text("25.0%")
    expect(panel.locator("[data-share-sunset]")).to_have_text("50.0%")
    expect(panel.locator("#pool-panel-bars li")).to_have_count(2)  # the last 30 days
    screenshot(page, "dashboard-pool-health")
    page.click("nav >> text=Pool health")
    page.wait_for_url("**/admin/pool")
    bars = page.locator("#pool-bars li")
    expect(bars).to_have_count(4)
    shares = [
        (bars.nth(i).get_attribute("data-active"), bars.nth(i).get_attribute("data-cold"),
         bars.nth(i).get_attribute("data-sunset"))
        for i in range(4)
    ]  # fmt: skip
    assert shares == [
        ("100.0", "0", "0"), ("25.0", "75.0", "0"), ("50.0", "50.0", "0"), ("25.0", "25.0", "50.0"),
    ]  # fmt: skip
    sunset = page.locator("#sunset li")
    expect(sunset).to_have_count(2)
    expect(sunset.first).to_contain_text("no open, click or reply in 2 months")
    expect(page.locator("#policy form")).to_have_count(0)  # a viewer reads the policy
    screenshot(page, "admin-pool-health")

    page.click("button:has-text('Sign out')")
    login(page, "admin")
    page.goto("/admin/pool")
    page.fill("#cold_after_days", "soon")
    page.fill("#sunset_after_months", "1")
    page.click("button:has-text('Save policy')")
    expect(page.locator("#policy .error").first).to_contain_text("Give a whole number of days")
    page.fill("#cold_after_days", "60")
    page.click("button:has-text('Save policy')")
    expect(page.locator("#policy .error")).to_contain_text("Must be longer than the cold period")
    expect(page.locator("[data-cold-days]")).to_have_text("30 days")  # nothing saved
    page.fill("#sunset_after_months", "6")
    page.click("button:has-text('Save policy')")
    expect(page.locator(".flash.success")).to_contain_text("cold after 60 days, sunset after 6")
    expect(page.locator("[data-cold-days]")).to_have_text("60 days")
