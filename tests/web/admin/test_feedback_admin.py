"""Feedback in Chromium: on a phone, a candidate follows a rating link from the mail, answers
"what could we have done better?" (an empty answer is named); the Feedback page shows the answer
per stage and reason, filters by stage, and lists the candidate whose mail waits for a note."""

from __future__ import annotations

import re
from html import unescape

from playwright.sync_api import expect

from nurture.extensions import db
from nurture.tasks.scheduling import run_tick
from tests.conftest import ats_post, auth_headers
from tests.support.workers import drain
from tests.web.admin.conftest import login, screenshot

PHONE = {"width": 390, "height": 844}


def _campaign(client, headers, name, steps) -> None:  # noqa: ANN001
    created = client.post(
        "/api/v1/campaigns",
        json={"name": name, "entry": {"ats_event": "candidate.rejected"}, "steps": steps},
        headers=headers,
    )
    assert created.status_code == 201, created.json
    client.post(f"/api/v1/campaigns/{created.json['id']}/activate", headers=headers)


def test_a_candidate_answers_on_a_phone_and_the_team_reads_it(
    browser, page, live_app, live_server, smtp
) -> None:
    client = live_app.test_client()
    editor = auth_headers(live_app, "editor")
    _campaign(client, editor, "Interview feedback", [{"template": "feedback_request"}])
    _campaign(
        client, editor, "Personal follow-up",
        [{"template": "rejection_followup", "require_strengths": True}],
    )  # fmt: skip
    ana = {
        "email": "ana@example.org",
        "first_name": "Ana",
        "last_name": "Silva",
        "stage": "onsite",
        "rejection_reason": "experience",
        "strengths": "Clear thinking.",
    }
    bo = {"email": "bo@example.org", "first_name": "Bo", "stage": "phone screen",
          "rejection_reason": "timing", "recruiter_name": "Jordan Lee"}  # fmt: skip
    for person in (ana, bo):
        ats_post(client, {"type": "candidate.rejected", "candidate": person})
    run_tick(live_app)
    drain(live_app)
    mails = smtp.wait_for(3)  # two feedback mails, Ana's follow-up; Bo's is held
    [ask] = [
        m for m in mails
        if m.as_email()["To"] == "ana@example.org" and "interviewing" in m.as_email()["Subject"]
    ]  # fmt: skip
    html = ask.as_email().get_body(preferencelist=("html",)).get_content()
    links = [unescape(u) for u in re.findall(r'href="([^"]+/r/[^"]+)"', html)]
    db.session.remove()

    phone = browser.new_context(viewport=PHONE, base_url=live_server.url, is_mobile=True)
    reader = phone.new_page()
    reader.route("**/*", lambda route: route.abort())  # the open pixel stays unfetched
    reader.set_content(html, wait_until="load")
    expect(reader.locator("a.button-link")).to_have_text("5 Excellent")
    width = reader.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the mail is {width}px wide on a 390px phone"
    reader.screenshot(
        path=str(screenshot_path("email-feedback_request-as-received-390")), full_page=True
    )
    reader.close()
    candidate = phone.new_page()
    candidate.goto(links[1].replace(live_app.config["BASE_URL"], ""))  # "4 Good"
    expect(candidate.locator("h1")).to_have_text("Thank you for your answer")
    expect(candidate.locator("label[for=answer]")).to_have_text("What could we have done better?")
    candidate.click("button:has-text('Send my answer')")
    expect(candidate.locator("#answer-error")).to_contain_text("write a few words")
    candidate.screenshot(path=str(screenshot_path("public-rating-question-error-390")))
    candidate.fill("#answer", "A clearer timeline after the onsite would have helped.")
    candidate.screenshot(path=str(screenshot_path("public-rating-question-390")), full_page=True)
    candidate.click("button:has-text('Send my answer')")
    expect(candidate.locator("#answer-saved")).to_contain_text("your answer reached the team")
    candidate.screenshot(path=str(screenshot_path("public-rating-thanks-390")), full_page=True)
    phone.close()

    login(page, "viewer")
    page.click("nav >> text=Feedback")
    page.wait_for_url("**/admin/feedback")
    expect(page.locator("#per-stage [data-row=onsite] [data-average]")).to_have_text("4.0 ★")
    expect(page.locator("#per-stage [data-row=onsite] [data-answers]")).to_have_text("1")
    expect(page.locator("#per-reason [data-row=experience] [data-ratings]")).to_have_text("1")
    expect(page.locator(".answer-list blockquote")).to_have_text(
        "A clearer timeline after the onsite would have helped."
    )
    banner = page.locator("#strengths-banner")
    expect(banner).to_contain_text("1 candidate is waiting for the recruiter's note")
    held = page.locator("#missing [data-held=yes]")
    expect(held).to_contain_text("Bo")
    expect(held).to_contain_text("step 1 of “Personal follow-up” needs their strengths")
    expect(held.locator("text=Write the note")).to_have_count(0)  # a viewer cannot edit
    screenshot(page, "admin-feedback")

    page.click("#per-reason >> text=experience")
    expect(page.locator("#answer-filter")).to_contain_text("reason experience")
    expect(page.locator(".answer-list li")).to_have_count(1)
    page.goto("/admin/feedback?stage=phone+screen")
    expect(page.locator(".answer-list")).to_have_count(0)
    expect(page.locator("#answers")).to_contain_text("No written answer for this choice")


def screenshot_path(name: str):  # noqa: ANN201
    from tests.web.admin.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
