"""The Replies inbox in Chromium: a candidate's reply (read by the inbound code, forwarded to the
recruiter over SMTP) waits as open, shows what they wrote and the conversation, and is marked
handled; the candidate's page lists it; the recruiter's forwarded copy reads on a phone."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from playwright.sync_api import expect

from nurture.core.campaigns.service import create_campaign, set_status
from nurture.core.feedback import inbound
from nurture.extensions import db
from nurture.tasks.replies import forward_pending_replies
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import template_library
from nurture.workflows.ats import handle_ats_event
from tests.support.workers import drain
from tests.web.admin.conftest import ARTIFACTS, login, screenshot


def test_a_reply_is_read_forwarded_and_marked_handled(
    page, browser, live_app, live_server, smtp, clock
) -> None:
    now = clock.now()
    campaign = create_campaign(
        db.session,
        {"name": "Silver medalists", "entry": {"ats_event": "candidate.rejected"},
         "steps": [{"delay": "PT0S", "template": "rejection_followup"}]},
        template_library(live_app), now,
    )  # fmt: skip
    set_status(db.session, campaign, "active", now)
    handle_ats_event(
        db.session,
        {"type": "candidate.rejected", "candidate": {
            "email": "ana@example.org", "first_name": "Ana", "last_name": "Lima",
            "recruiter_name": "Jordan Lee", "recruiter_email": "jordan@acme.example.com"}},
        now,
    )  # fmt: skip
    db.session.commit()
    run_tick(live_app)
    drain(live_app)
    [sent] = smtp.wait_for(1)
    original = sent.as_email()
    smtp.clear()

    clock.advance(timedelta(hours=3))
    reply = EmailMessage()
    reply["From"] = "Ana Lima <ana@example.org>"
    reply["To"] = original["Reply-To"]
    reply["Subject"] = f"Re: {original['Subject']}"
    reply["Message-ID"] = make_msgid(domain="example.org")
    reply["In-Reply-To"] = original["Message-ID"]
    reply.set_content(
        "Thanks Jordan! I'd love to hear when the platform team hires again.\n\n"
        "On Mon, Jordan Lee wrote:\n> I wanted to write to you myself\n"
    )
    found = inbound.classify(bytes(reply))
    inbound.apply(db.session, found, clock.now())
    db.session.commit()
    assert forward_pending_replies(live_app) == {"sent": 1}
    [forwarded] = smtp.wait_for(1)
    assert forwarded.rcpt_tos == ["jordan@acme.example.com"]

    login(page, "editor")
    expect(page.locator("nav >> text=Replies")).to_be_visible()
    page.click("nav >> text=Replies")
    item = page.locator(".reply-item").first
    expect(item).to_contain_text("Ana Lima")
    expect(item).to_contain_text("platform team hires again")
    expect(item).not_to_contain_text("I wanted to write to you myself")
    expect(item).to_contain_text("Forwarded to jordan@acme.example.com")
    screenshot(page, "admin-replies-inbox")

    item.locator("a.reply-who").click()
    expect(page.locator(".reply-text")).to_contain_text("platform team hires again")
    conversation = page.locator(".conversation li")
    expect(conversation).to_have_count(2)
    expect(conversation.nth(0)).to_contain_text("We wrote")
    expect(conversation.nth(1)).to_contain_text("They replied")
    screenshot(page, "admin-reply")
    page.click("button:has-text('Mark handled')")
    expect(page.locator(".flash.success")).to_contain_text("Marked handled")
    expect(page.locator(".page-head .badge")).to_have_text("handled")

    page.click("nav >> text=Replies")
    expect(page.locator(".panel.empty")).to_contain_text("No reply is waiting")
    page.click(".status-tabs >> text=Handled")
    expect(page.locator(".reply-item")).to_have_count(1)
    page.click("text=ana@example.org")
    expect(page.locator("#candidate-replies")).to_contain_text(f"Re: {original['Subject']}")

    # The recruiter reads the forwarded copy on a phone: plain, no tracking, fits.
    html = forwarded.as_email().get_body(preferencelist=("html",)).get_content()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    reader = context.new_page()
    reader.route("**/*", lambda route: route.abort())
    reader.set_content(html, wait_until="load")
    expect(reader.locator("blockquote")).to_contain_text("platform team hires again")
    assert reader.evaluate("document.documentElement.scrollWidth") <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    reader.screenshot(path=str(ARTIFACTS / "email-reply-forward-390.png"), full_page=True)
    context.close()
