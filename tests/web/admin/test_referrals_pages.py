"""Referrals in Chromium: the referral page and the consent page on a 390 px phone, the consent
mail as the person recommended receives it, and the admin's Referrals page."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from nurture.core.campaigns.openings import create_opening
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Referral
from nurture.tasks.scheduling import run_tick
from nurture.workflows.candidates import save_candidate
from tests.support.workers import drain
from tests.web.admin.conftest import ARTIFACTS, login, screenshot

PHONE = {"width": 390, "height": 844}
A_PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


def _phone(browser, live_server):  # noqa: ANN001, ANN202
    return browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True, user_agent=A_PHONE,
        base_url=live_server.url,
    )  # fmt: skip


def _fits(page) -> None:  # noqa: ANN001
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_recommend_someone_on_a_phone_and_they_say_yes(
    page, browser, live_app, live_server, smtp, clock
) -> None:
    now = clock.now()
    ana, _ = save_candidate(
        db.session,
        {"email": "ana@example.org", "first_name": "Ana", "last_name": "Lima",
         "recruiter_name": "Jordan Lee", "recruiter_email": "jordan@acme.example.com"},
        now,
    )  # fmt: skip
    opening = create_opening(
        db.session,
        {"title": "Senior Platform Engineer", "url": "https://careers.example.com/j/7",
         "location": "Lisbon", "skills": ["go", "kubernetes"]},
        now,
    )  # fmt: skip
    db.session.commit()
    ana_id = ana.id
    tokens = Tokens.from_config(live_app.config)
    link = tokens.referral_url(ana_id, opening.id, None).replace(live_app.config["BASE_URL"], "")

    context = _phone(browser, live_server)
    phone = context.new_page()
    phone.goto(link)
    expect(phone.locator("h1")).to_have_text("Who do you know for Senior Platform Engineer?")
    _fits(phone)
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "referral-form-390.png"), full_page=True)

    phone.click("button:has-text('Send my recommendation')")  # nothing filled in
    expect(phone.locator(".alert")).to_contain_text("check the fields")
    expect(phone.locator(".field.has-error")).to_have_count(2)
    expect(phone.locator("text=First name is required")).to_be_visible()
    phone.screenshot(path=str(ARTIFACTS / "referral-form-errors-390.png"), full_page=True)
    assert db.session.scalar(select(Referral.id)) is None

    phone.fill("#first_name", "Ben")
    phone.fill("#last_name", "Okafor")
    phone.fill("#email", "ben@example.org")
    phone.select_option("#relation", "worked together")
    phone.fill("#note", "Ran our on-call rotation for two years; calm under pressure.")
    expect(phone.locator("input[value=requested]")).to_be_checked()  # asking first is the default
    phone.click("button:has-text('Send my recommendation')")
    expect(phone.locator("h1")).to_have_text("Thank you for your recommendation")
    _fits(phone)
    phone.screenshot(path=str(ARTIFACTS / "referral-thanks-390.png"), full_page=True)

    db.session.expire_all()
    ben = db.session.scalar(select(Candidate).where(Candidate.email == "ben@example.org"))
    assert (ben.source, ben.referred_by_id, ben.recruiter_email) == (
        "referral", ana_id, "jordan@acme.example.com",
    )  # fmt: skip
    ben_id = ben.id

    # The consent request, as Ben receives it, read on his phone.
    clock.advance(timedelta(minutes=1))
    run_tick(live_app)
    drain(live_app)
    [mail] = smtp.wait_for(1)
    message = mail.as_email()
    assert message["To"] == "ben@example.org"
    html = message.get_body(preferencelist=("html",)).get_content()
    reader = context.new_page()
    reader.route("**/*", lambda route: route.abort())  # the open pixel stays unfetched
    reader.set_content(html, wait_until="load")
    expect(reader.locator("h1")).to_have_text("Someone thought of you")
    expect(reader.locator(".card")).to_contain_text("Ana Lima thought you would be a great fit")
    _fits(reader)
    reader.screenshot(path=str(ARTIFACTS / "email-referral_consent-as-received-390.png"),
                      full_page=True)  # fmt: skip

    consent = tokens.referral_consent_url(ben_id).replace(live_app.config["BASE_URL"], "")
    phone.goto(consent)
    expect(phone.locator("h1")).to_have_text("Ana Lima recommended you")
    _fits(phone)
    phone.screenshot(path=str(ARTIFACTS / "referral-consent-390.png"), full_page=True)
    phone.click("button:has-text('Yes, tell me about roles like this')")
    expect(phone.locator("h1")).to_have_text("Welcome to the Acme Talent talent network")
    phone.screenshot(path=str(ARTIFACTS / "referral-consent-yes-390.png"), full_page=True)
    context.close()
    db.session.expire_all()
    assert db.session.get(Candidate, ben_id).consent_basis == "consent"

    # The recruiter sees it in the admin, on the Referrals page and on both candidates' pages.
    login(page, "viewer")
    page.click("nav >> text=Referrals")
    expect(page.locator("[data-total=referrals]")).to_have_text("1")
    expect(page.locator("[data-total=joined]")).to_have_text("1")
    row = page.locator("#recent tbody tr").first
    expect(row).to_contain_text("Ben Okafor")
    expect(row).to_contain_text("Ana Lima")
    expect(row).to_contain_text("In the network")
    expect(page.locator("#per-referrer")).to_contain_text("Ana Lima")
    screenshot(page, "admin-referrals")
    row.locator("a", has_text="Ben Okafor").click()
    expect(page.locator("#candidate-referrals")).to_contain_text("Referred by Ana Lima")
    expect(page.locator("text=referral").first).to_be_visible()
