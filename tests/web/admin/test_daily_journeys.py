"""The admin journeys recruiting ops walk every day (issue 13), in a real browser.

Each test follows one bullet of the issue: the mail a template really sends, overlapping
rejection drips, mail that waits and says why, imported candidates joining a drip, the segment
builder's pickers, live progress and confirm pages, the way in, the candidates' own pages and
the admin on a phone. Screenshots at 1280 and 390 px go to tests/artifacts/.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import func, select

from nurture.core.audience.segments import save_segment
from nurture.core.campaigns import service as campaign_service
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import (
    Campaign,
    Candidate,
    Enrolment,
    Event,
    FeedbackAnswer,
    Message,
    Stage,
    Suppression,
    Tag,
    TemplateVersion,
)
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import template_library
from nurture.workflows.ats import handle_ats_event
from nurture.workflows.candidates import save_candidate
from tests.support.paths import ARTIFACTS, FIXTURES
from tests.web.admin.conftest import login, screenshot, work_off

FIXTURE = FIXTURES / "candidates.csv"
A_PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


def now_of(app: Flask):
    return app.extensions["nurture.clock"].now()


def person(app: Flask, email: str, **fields: Any) -> Candidate:
    candidate, _ = save_candidate(db.session, {"email": email, **fields}, now_of(app))
    db.session.commit()
    return candidate


def drip(app: Flask, name: str, *steps: dict[str, Any], activate: bool = True, **body: Any):
    """A drip made through the campaign service, as the API makes it."""
    campaign = campaign_service.create_campaign(
        db.session,
        {"name": name, "kind": "drip", "steps": list(steps), **body},
        template_library(app),
        now_of(app),
    )
    if activate:
        campaign_service.set_status(db.session, campaign, "active", now_of(app))
    db.session.commit()
    return campaign


def send(app: Flask) -> int:
    """The scheduler's pass and a real RQ worker until the queue is empty."""
    with app.app_context():
        created = run_tick(app).created
    work_off(app)
    db.session.remove()
    return created


def count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def sent_before(app: Flask, candidate: Candidate, times: int, days_ago: int = 1) -> None:
    """``times`` mails sent to the candidate lately (they are at the frequency cap)."""
    old = drip(app, "Earlier check-ins", {"delay": "PT0S", "template": "checkin_3_months"},
               activate=False)  # fmt: skip
    enrolment = Enrolment(candidate_id=candidate.id, campaign_id=old.id, status="completed",
                          next_position=1, created_at=now_of(app))  # fmt: skip
    db.session.add(enrolment)
    db.session.flush()
    for n in range(times):
        db.session.add(
            Message(
                candidate_id=candidate.id,
                campaign_id=old.id,
                step_id=old.steps[0].id,
                enrolment_id=None,
                state="sent",
                subject=f"Earlier {n}",
                queued_at=now_of(app) - timedelta(days=days_ago),
                sent_at=now_of(app) - timedelta(days=days_ago, minutes=n),
            )  # fmt: skip
        )
    db.session.commit()


# --- templates: the mail a candidate really gets --------------------------------------------


def test_a_template_says_what_it_will_send_and_keeps_every_version(page, live_app, smtp):
    person(live_app, "ana@example.org", first_name="Ana", role="Staff Engineer",
           skills=["python", "aws", "django"], stage="")  # fmt: skip
    login(page, "editor")
    page.goto("/admin/templates")
    # The gallery: every starter with a thumbnail of itself.
    thumbs = page.locator("#starters .tpl-thumb iframe")
    assert thumbs.count() == len(template_library(live_app).names())
    thumb = page.request.get(thumbs.first.get_attribute("src"))
    assert thumb.ok and "sandbox" in thumb.headers["content-security-policy"]
    # Each thumbnail shows its mail (lazily: once scrolled to, as a reader would).
    for index in range(thumbs.count()):
        thumbs.nth(index).scroll_into_view_if_needed()
        expect(thumbs.nth(index).content_frame.locator("body")).to_contain_text("Acme Talent")
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "journey-templates-gallery")

    # The follow-up starter asks for a rating, and an editor edits it in place.
    page.click("#starters >> text=rejection_followup")
    expect(page.locator("h1 [data-state=shipped]")).to_be_visible()
    assert page.locator("textarea[name=html]").get_attribute("readonly") is None
    assert "5 Excellent" in page.frame_locator("#frame-desktop").locator("body").inner_text()
    html = page.locator("textarea[name=html]").input_value()
    paragraph = "Decisions like this come down to one opening at a particular moment."
    # What the variable picker inserts: a list, which reads as a sentence, not as Python.
    page.locator("textarea[name=html]").fill(html.replace(paragraph, "Your skills in  stood out."))
    area = page.locator("textarea[name=html]")
    area.evaluate("(el, at) => { el.focus(); el.setSelectionRange(at, at); }",
                  html.index(paragraph) + len("Your skills in "))  # fmt: skip
    page.click(".tpl-var[data-insert='{{ candidate.skills }}']")
    assert "Your skills in {{ candidate.skills }} stood out." in area.input_value()
    page.locator(".tpl-buttons button[data-preview]").click()
    frame = page.frame_locator("#frame-desktop").locator("body")
    expect(frame).to_contain_text("Your skills in aws, django and python stood out.")
    notes = page.locator("#preview-notes")
    expect(notes).to_contain_text("only in the HTML: “Your skills in aws, django and python")
    expect(notes).to_contain_text("only in the plain text: “Decisions like this come down")
    page.locator("#preview-notes-box").scroll_into_view_if_needed()
    screenshot(page, "journey-template-warnings")

    # Saved anyway: a version is kept, and the warning is said again.
    page.click("button[value=save]")
    expect(page.locator(".flash.success")).to_contain_text("Saved rejection_followup")
    expect(page.locator(".flash.warning", has_text="plain-text part")).to_be_visible()
    unguarded = page.locator(".flash.warning", has_text="{{ candidate.skills }} is not inside")
    expect(unguarded).to_be_visible()
    expect(page.locator("h1 [data-state=edited]")).to_be_visible()
    assert "aws, django and python" not in template_library(live_app).get(
        "rejection_followup"
    ).text.render({"candidate": {"skills": []}})  # the text part was not changed by it

    # One click: the text is made from the HTML, and the two say the same again.
    page.click("[data-text-from-html]")
    expect(page.locator("textarea[name=text]")).to_have_value("")
    page.click("button[value=save]")
    expect(page.locator(".flash.success")).to_be_visible()
    assert page.locator(".flash.warning", has_text="plain-text part").count() == 0
    versions = page.locator(".version-list li")
    expect(versions).to_have_count(2)

    # An earlier version back, then the starter as shipped: every step stays in the history.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".version-list li[data-version='1'] button").click()
    expect(page.locator(".flash.success")).to_contain_text("Restored rejection_followup")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Reset to starter')")
    expect(page.locator("h1 [data-state=shipped]")).to_be_visible()
    notes_of = [v.note for v in db.session.scalars(
        select(TemplateVersion).order_by(TemplateVersion.number))]  # fmt: skip
    assert notes_of == ["saved", "saved", "restored version 1", "reset to the starter"]
    screenshot(page, "journey-template-versions")

    # Python in the output never reaches a candidate: refused at the field, nothing saved.
    page.locator("textarea[name=html]").fill(
        html.replace(paragraph, "Skills: {{ candidate.skills|string }}.")
    )
    page.click("button[value=save]")
    error = page.locator(".field:has(textarea[name=html]) .error")
    expect(error).to_contain_text("shows “…")
    expect(error).to_contain_text("['python'")
    assert count(TemplateVersion) == 4


# --- two rejection drips: one follow-up per rejection --------------------------------------


def test_a_second_rejection_drip_warns_and_never_sends_two_follow_ups(page, live_app, smtp):
    first = drip(live_app, "Silver medalists",
                 {"delay": "PT0S", "template": "rejection_followup"},
                 entry={"ats_event": "candidate.rejected"},
                 exclusive_group="rejection-follow-up")  # fmt: skip
    for name in ("ana", "bo", "chen", "dee"):
        handle_ats_event(db.session, {"type": "candidate.rejected",
                         "candidate": {"email": f"{name}@example.org",
                                       "first_name": name.title()}}, now_of(live_app))  # fmt: skip
    db.session.commit()
    login(page, "editor")

    # Built in the builder: "one follow-up per rejection" is ticked; untick it to see why.
    page.goto("/admin/campaigns/new")
    page.fill("#name", "Engineering rejections")
    page.check("input[name=entry_type][value=ats_event]")
    assert page.locator("#exclusive").is_checked()
    page.uncheck("#exclusive")
    page.locator("select[name='steps-0-template']").select_option("rejection_followup")
    expect(page.locator("#thumb-0")).to_be_visible()  # the step's template at a glance
    opens = page.locator("#thumb-0-link").get_attribute("href")
    assert opens.endswith("/admin/templates/open/rejection_followup")
    assert page.request.get(opens).url.endswith("/admin/templates/starter/rejection_followup")
    page.fill("input[name='steps-0-delay_amount']", "0")
    page.click("text=Save as draft")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    second_url = page.url
    page.click("text=Activate…")
    overlap = page.locator("[data-overlap]")
    expect(overlap).to_contain_text("Silver medalists")
    assert overlap.locator("[data-both]").inner_text() == "4"
    # Step 1 as it goes out, for a real candidate, with its real subject and a test send.
    assert page.locator("[data-mail-subject]").inner_text().startswith("Thank you for your time")
    page.fill("#test-to", "ops@example.com")
    page.click("form[data-test-send] button")
    expect(page.locator("[data-test-result]")).to_contain_text("Sent “[Test] Thank you")
    assert smtp.wait_for(1)[0].rcpt_tos == ["ops@example.com"]
    screenshot(page, "journey-overlap-confirm")

    # Ticked again: the two share the group, and nobody gets both.
    page.goto(second_url + "/edit")
    page.check("#exclusive")
    page.click("text=Save changes")
    page.click("text=Activate…")
    expect(page.locator("[data-overlap]")).to_contain_text("one does not enter the other")
    page.click("button:has-text('Activate campaign')")
    expect(page.locator(".flash.success")).to_contain_text("is active")
    eli = {"type": "candidate.rejected", "candidate": {"email": "eli@example.org"}}
    answer = handle_ats_event(db.session, eli, now_of(live_app))
    db.session.commit()
    assert answer["enrolled_campaign_ids"] == [first.id]
    assert count(Enrolment, Enrolment.candidate_id == answer["candidate_id"]) == 1


# --- mail that waits says why, and personal mail does not wait -----------------------------


def test_held_mail_says_why_and_until_when_everywhere(page, live_app, smtp):
    ana = person(live_app, "ana@example.org", first_name="Ana", role="Data Engineer",
                 skills=["python", "sql"], location="Berlin")  # fmt: skip
    sent_before(live_app, ana, times=2)  # at the cap: 2 mails in 7 days
    ana_id = ana.id
    drip(live_app, "Silver medalists",
         {"delay": "PT0S", "template": "rejection_followup"},
         {"delay": "P3D", "template": "talent_network_invite", "condition": "previous_not_opened"},
         entry={"ats_event": "candidate.rejected"})  # fmt: skip
    handle_ats_event(db.session, {"type": "candidate.rejected",
                     "candidate": {"email": "ana@example.org"}}, now_of(live_app))  # fmt: skip
    db.session.commit()
    send(live_app)
    # The rejection follow-up is personal: the cap did not hold it.
    (follow_up,) = [m for m in smtp.messages if m.rcpt_tos == ["ana@example.org"]]
    assert follow_up.as_email()["Subject"].startswith("Thank you for your time")

    login(page, "editor")
    page.goto("/admin/jobs")
    page.fill("#title", "Senior Data Engineer")
    page.fill("#skills", "python, sql")
    page.fill("#location", "Berlin, Germany")
    page.fill("#url", "https://careers.example.com/jobs/1")
    page.click("text=Find matching candidates")
    page.click("a[data-send]")
    # The confirm page says who will wait, shows the alert for a real match, and tests it.
    assert page.locator("[data-impact=capped]").inner_text() == "1"
    assert "held" not in page.locator("[data-mail-subject]").inner_text()
    expect(page.frame_locator("[data-mail-frame]").locator("body")).to_contain_text(
        "Senior Data Engineer"
    )
    screenshot(page, "journey-job-confirm")
    page.click("button:has-text('Send to 1 candidate')")
    send(live_app)
    page.reload()
    row = page.locator("tr:has-text('ana@example.org')")
    expect(row).to_contain_text("held by the frequency cap (2 mails per 7 days) until")
    assert page.locator("[data-send-label]").inner_text() == (
        "Everyone is getting it: 1 waiting for their time"
    )
    expect(page.locator("#waiting")).to_contain_text("1 held by the frequency cap")
    screenshot(page, "journey-job-held")

    # Her page says the same, and what becomes of step 2 once she opened step 1.
    opened = db.session.scalar(select(Message).where(Message.subject.like("Thank you%")))
    pixel = Tokens.from_config(live_app.config).open_url(opened.id)
    live_app.extensions["nurture.clock"].advance(timedelta(minutes=7))
    assert page.request.get(urlsplit(pixel).path, headers={"User-Agent": A_PHONE}).ok
    page.goto(f"/admin/candidates/{ana_id}")
    expect(page.locator(".cand-timeline")).to_contain_text("Waiting")
    expect(page.locator(".cand-timeline [data-hold='frequency cap']")).to_contain_text(
        "held by the frequency cap"
    )
    expect(page.locator("[data-outlook]")).to_contain_text(
        "Cannot be met: they opened step 1, so step 2 will be skipped"
    )
    # Her campaigns say it too: the alert's mail waits, and until when (not "in progress").
    held = page.locator(".enrolments li:has-text('Job alert') [data-held]")
    expect(held).to_contain_text("held by the frequency cap (2 mails per 7 days) until")
    screenshot(page, "journey-candidate-held")

    # The dashboard counts it under "Needs attention" instead of "all healthy".
    page.goto("/admin/")
    expect(page.locator(".attention-list")).to_contain_text("1 mail held by the frequency cap")
    expect(page.locator("[data-waiting]")).to_contain_text("1 held by the frequency cap")


# --- imported candidates join a drip --------------------------------------------------------


def import_fixture(page, live_app) -> str:
    """Import the fixture CSV (two bad rows) with the tag "journey"; returns the report URL."""
    page.goto("/admin/imports/new")
    page.set_input_files("input[name=file]", str(FIXTURE))
    page.click("button:has-text('Upload and map columns')")
    page.fill("input[name=tags]", "journey")
    page.click("button:has-text('Check every row')")
    page.click("button:has-text('Import 18 good rows')")
    page.wait_for_url(re.compile(r"/admin/imports/\d+$"))
    work_off(live_app)
    page.reload()
    expect(page.locator("#count-created")).to_have_text("18")
    return page.url


def test_imported_candidates_join_a_rejection_drip_at_once(page, live_app):
    rejections = drip(live_app, "Silver medalists",
                      {"delay": "P1D", "template": "rejection_followup"},
                      entry={"ats_event": "candidate.rejected"})  # fmt: skip
    rejections_id = rejections.id
    login(page, "editor")
    report = import_fixture(page, live_app)

    # The rejected rows, as a file to fix and import again: their columns, line and problem.
    with page.expect_download() as download:
        page.click("[data-download-rejected]")
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig"))))
    assert rows[0][-2:] == ["line", "problem"] and len(rows) == 3
    assert rows[1][2] == "tomas.novak@" and rows[1][-2] == "6"
    assert "E-mail" in rows[1][-1]

    # Everyone imported, into the rejection drip, in one go.
    bar = page.locator("#import-bulk")
    expect(bar).to_contain_text("everyone imported (18)")
    bar.locator("select[name=campaign_id]").select_option(str(rejections_id))
    screenshot(page, "journey-import-report")
    bar.locator("button[value=enrol]").click()
    expect(page.locator(".flash.success")).to_contain_text(
        "Enrolled 18 candidates in “Silver medalists”."
    )
    assert count(Enrolment, Enrolment.campaign_id == rejections_id) == 18
    assert page.url == report

    # Or only some of them: two rows ticked in the report, tagged for a shortlist.
    expect(page.locator("table.imported-rows tbody tr")).to_have_count(18)
    ticked = page.locator("table.imported-rows tbody input[name=ids]")
    ticked.nth(0).check()
    ticked.nth(1).check()
    bar.locator("input[name=scope][value=ids]").check()
    bar.locator("input[name=new_tag]").fill("shortlist")
    bar.locator("button[value=tag]").click()
    expect(page.locator(".flash.success")).to_be_visible()
    db.session.expire_all()
    assert count(Candidate, Candidate.tags.any(Tag.name == "shortlist")) == 2

    # A drip of its own for them: the ATS's rejections, and whoever is in a segment.
    segment = save_segment(db.session, "Imported this spring", {"tag": "journey"},
                           now_of(live_app))  # fmt: skip
    db.session.commit()
    page.goto("/admin/campaigns/new")
    page.fill("#name", "Spring check-in")
    page.check("input[name=entry_type][value=ats_event]")
    page.uncheck("#exclusive")
    page.select_option("#entry_segment", str(segment.id))
    page.locator("select[name='steps-0-template']").select_option("checkin_3_months")
    page.click("text=Save as draft")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    page.click("text=Activate…")
    assert page.locator("[data-impact=segment]").inner_text() == "18"
    page.check("input[name=segment_members][value=no]")
    screenshot(page, "journey-segment-entry-confirm")
    page.click("button:has-text('Activate campaign')")
    expect(page.locator(".flash.success")).to_contain_text(
        "Only candidates who join the segment from now on will enter."
    )
    spring = db.session.scalar(select(Campaign).where(Campaign.name == "Spring check-in"))
    assert count(Enrolment, Enrolment.campaign_id == spring.id, Enrolment.status == "active") == 0
    # Someone new joins the segment: they enter; those kept out at activation stay out.
    person(live_app, "new.one@example.org", tags=["journey"])
    assert count(Enrolment, Enrolment.campaign_id == spring.id, Enrolment.status == "active") == 1
    page.reload()
    expect(page.locator("[data-timeline]")).to_contain_text("Imported this spring")
    expect(page.locator("#enrolments + .table-wrap tbody tr")).to_have_count(1)


# --- the segment builder: pickers, case, stages, units, why nobody ---------------------------


def test_the_segment_builder_suggests_values_and_says_why_nobody_matches(page, live_app):
    for n, stage in enumerate(
        ["Onsite", "on-site", "onsite", "Final interview", "final  interview"]
    ):
        person(live_app, f"p{n}@example.org", first_name=f"P{n}", stage=stage,
               skills=["python"] if n % 2 else ["go"], tags=["silver-medalist"])  # fmt: skip
    # Every spelling of a stage is one stage, under one name.
    assert [s.name for s in db.session.scalars(select(Stage).order_by(Stage.position))] == [
        "Onsite", "Final interview",
    ]  # fmt: skip
    login(page, "editor")
    page.goto("/admin/segments/new")
    page.fill("#name", "Onsite silver medalists")
    page.click("#seg-add")
    page.select_option("#c-0-field", "stage")
    page.focus("#c-0-value")
    # The picker offers the stages that exist, with how many are at each.
    page.wait_for_function("() => document.querySelectorAll('#c-0-values option').length === 2")
    assert page.locator("#c-0-values option").first.get_attribute("value") == "Onsite"
    assert page.locator("#c-0-values option").first.get_attribute("label") == "3 candidates"
    page.fill("#c-0-value", "onsite")  # typed in lower case: it still matches
    page.wait_for_function("() => document.querySelector('#seg-count').textContent === '3'")
    page.click("#seg-add")
    page.select_option("#c-1-kind", "opened")
    expect(page.locator("#seg-rows li").nth(1).locator(".seg-unit")).to_have_text("days")
    page.click("button[value='remove:1']")
    # A value nobody has: the count is 0, and the page says why, with what does exist.
    page.fill("#c-0-value", "Onsit")
    zero = page.locator("#seg-zero")
    expect(zero).to_contain_text("Nobody matches: stage is “Onsit”; known values: “Onsite”")
    expect(zero).to_contain_text("“Onsite” (3)")
    screenshot(page, "journey-segment-zero")
    page.fill("#c-0-value", "ONSITE")
    page.wait_for_function("() => document.querySelector('#seg-count').textContent === '3'")
    page.click("button[value='save']")
    expect(page.locator(".flash.success")).to_contain_text("saved")

    # The list: how many match now, and the rules in words.
    page.goto("/admin/segments")
    row = page.locator("tr[data-segment]")
    assert row.locator("[data-count]").inner_text() == "3"
    expect(row).to_contain_text("Stage is “ONSITE”")
    screenshot(page, "journey-segments-list")

    # Stages as a list: "Final interview" renamed, everyone at it moves with it.
    page.goto("/admin/segments/stages")
    page.locator("tr[data-stage='Final interview'] input[name=name]").fill("final interview")
    page.locator("tr[data-stage='Final interview'] button[value=rename]").click()
    expect(page.locator(".flash.success")).to_contain_text(
        "Renamed to “final interview”: 2 candidates moved."
    )
    assert count(Candidate, Candidate.stage == "final interview") == 2


# --- progress follows live; every confirm page shows the mail --------------------------------


def test_a_broadcast_shows_sent_held_and_skipped_live(page, live_app, smtp):
    from tests.web.admin.test_broadcasts import our_newsletter

    our_newsletter(live_app)
    for name in ("ana", "bo", "chen"):
        person(live_app, f"{name}@example.org", first_name=name.title(), tags=["network"])
    bo = db.session.scalar(select(Candidate).where(Candidate.email == "bo@example.org"))
    sent_before(live_app, bo, times=2)
    login(page, "editor")
    page.goto("/admin/broadcasts/new")
    page.fill("#name", "April newsletter")
    page.fill("#subject", "News for you, {{ candidate.first_name }}")
    page.fill("#audience_tag", "network")
    page.click("text=Check the audience…")
    # The real subject for a real member, the mail itself, a test, and who will wait.
    assert page.locator("[data-impact=audience]").inner_text() == "3"
    assert page.locator("[data-impact=capped]").inner_text() == "1"
    assert re.fullmatch(r"News for you, \w+", page.locator("[data-mail-subject]").inner_text())
    page.fill("#test-to", "ops@example.com")
    page.click("form[data-test-send] button")
    expect(page.locator("[data-test-result]")).to_contain_text("Sent “[Test] News for you")
    page.click("button:has-text('Send to 3 candidates')")
    page.wait_for_url(re.compile(r".*/admin/broadcasts/\d+$"))
    # The page follows the sending by itself: no reload.
    page.evaluate("window.notReloaded = true")
    with live_app.app_context():
        assert run_tick(live_app).created == 3
    # Chen unsubscribes while it is in the queue: skipped at send time, and the page says why.
    chen = db.session.scalar(select(Candidate).where(Candidate.email == "chen@example.org"))
    chen.status = "unsubscribed"
    db.session.commit()
    work_off(live_app)
    live = page.locator("#live")
    expect(live.locator("[data-live=sent] .n")).to_have_text("1", timeout=10000)
    expect(live.locator("[data-live=held] .n")).to_have_text("1")
    expect(live.locator("[data-live=skipped] .n")).to_have_text("1")
    expect(live.locator("[data-list=held_why]")).to_contain_text(
        "1 held by the frequency cap (2 mails per 7 days), the first until"
    )
    expect(live.locator("[data-list=skipped_why]")).to_contain_text("1 unsubscribed")
    # What candidates did follows too: the one who got it counts as received.
    expect(page.locator("[data-stat=sent]")).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True
    screenshot(page, "journey-broadcast-live")


# --- the way in: a first step, drips apart from broadcasts, pages that explain themselves ---


def test_the_way_in_is_clear_from_the_first_minute(page, live_app):
    login(page, "editor")
    checklist = page.locator("[data-checklist]")
    expect(checklist).to_contain_text("Get started: 0 of 4 done")
    expect(checklist.locator("li.next")).to_contain_text("Import your candidates")
    screenshot(page, "journey-first-run")
    person(live_app, "ana@example.org", first_name="Ana", tags=["network"])
    silver = drip(live_app, "Silver medalists",
                  {"delay": "PT0S", "template": "rejection_followup"},
                  {"delay": "P3D", "template": "talent_network_invite",
                   "condition": "previous_not_opened"},
                  entry={"ats_event": "candidate.rejected"},
                  exclusive_group="rejection-follow-up")  # fmt: skip
    silver_id = silver.id
    page.reload()
    expect(checklist).to_contain_text("2 of 4 done")
    expect(checklist.locator("li.next")).to_contain_text("Build a segment")

    # The drip reads as a timeline: entry, waits, conditions, who is sent what.
    page.goto(f"/admin/campaigns/{silver_id}")
    line = page.locator("[data-timeline]")
    expect(line).to_contain_text("Enters: ATS candidate.rejected")
    expect(line).to_contain_text("3 days later, if the previous mail was not opened")
    expect(line.locator("[data-step='1'] .personal")).to_have_text("personal")
    screenshot(page, "journey-drip-timeline")

    # A broadcast lives under Broadcasts, never among the drips as "Enrolled by hand".
    from tests.web.admin.test_broadcasts import our_newsletter

    our_newsletter(live_app)
    page.goto("/admin/broadcasts/new")
    page.fill("#name", "April newsletter")
    page.fill("#audience_tag", "network")
    page.click("text=Check the audience…")
    page.click("button:has-text('Send to 1 candidate')")
    page.goto("/admin/campaigns")
    expect(page.locator("table.campaign-list")).not_to_contain_text("April newsletter")
    expect(page.locator("table.campaign-list")).not_to_contain_text("Enrolled by hand")

    # A missing page is a page of the admin that says what is missing and where to look.
    answer = page.goto("/admin/campaigns/999")
    assert answer.status == 404
    expect(page.locator("h1")).to_have_text("There is no campaign #999")
    expect(page.locator(".error-page a.primary")).to_have_text("All campaigns")
    screenshot(page, "journey-not-found")
    page.context.clear_cookies()
    login(page, "viewer")
    assert page.goto("/admin/campaigns/new").status == 403
    expect(page.locator("h1")).to_have_text("You cannot do this here")


def test_a_server_error_is_a_page_of_the_admin_and_the_api_stays_json(live_app):
    from tests.web.admin.test_templates import signed_in

    live_app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken():
        raise RuntimeError("boom")

    live_app.view_functions["admin.dashboard.dashboard"] = broken
    client = signed_in(live_app, "editor")
    answer = client.get("/admin/")
    assert answer.status_code == 500
    assert "Something went wrong on our side" in answer.text
    assert "no mail was sent because of it" in answer.text
    missing = client.get("/api/v1/nowhere")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_the_admin_works_on_a_phone(browser, live_server, live_app):
    person(live_app, "a.very.long.address.of.someone@example-company-with-a-long-name.org",
           first_name="Ana", tags=["network"])  # fmt: skip
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  base_url=live_server.url)  # fmt: skip
    page = context.new_page()
    login(page, "admin")
    # The navigation folds behind a menu button.
    nav = page.locator("#main-nav")
    expect(nav).to_be_hidden()
    page.click("[data-nav-toggle]")
    expect(nav).to_be_visible()
    expect(nav.locator("a", has_text="Broadcasts")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS
                             / "journey-phone-menu-390.png"))  # fmt: skip
    # No page scrolls sideways: tables scroll in their box or stack.
    for path in ("/admin/", "/admin/candidates", "/admin/campaigns", "/admin/broadcasts",
                 "/admin/segments", "/admin/jobs", "/admin/templates", "/admin/imports",
                 "/admin/suppressions", "/admin/mailbox", "/admin/users",
                 "/admin/segments/stages", "/admin/campaigns/new"):  # fmt: skip
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    context.close()


# --- the candidates' own pages: leave, say why, come back, rate and comment, at 390 px -------


def test_a_candidate_leaves_says_why_comes_back_and_answers_after_a_rating(
    browser, live_server, live_app, smtp
):
    live_app.config.update(COMPANY_NAME="Northwind Labs", BRAND_COLOR="#0f766e")
    drip(live_app, "Silver medalists", {"delay": "PT0S", "template": "rejection_followup"},
         entry={"ats_event": "candidate.rejected"})  # fmt: skip
    handle_ats_event(db.session, {"type": "candidate.rejected", "candidate": {
        "email": "ana@example.org", "first_name": "Ana"}}, now_of(live_app))  # fmt: skip
    db.session.commit()
    send(live_app)
    mail = smtp.wait_for(1)[0].as_email()
    html = mail.get_body(("html",)).get_content()
    unsubscribe = urlsplit(mail["List-Unsubscribe"].strip("<>").split(">,")[0].strip("<>")).path
    rating = urlsplit(re.search(r'href="([^"]+/r/[^"]+)"[^>]*>4 Good', html)[1]).path
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  base_url=live_server.url, user_agent=A_PHONE)  # fmt: skip
    page = context.new_page()

    # The company's name and colour on the page.
    page.goto(unsubscribe)
    expect(page.locator("[data-company]")).to_have_text("Northwind Labs")
    colour = page.evaluate(
        "getComputedStyle(document.querySelector('.masthead')).borderBottomColor"
    )
    assert colour == "rgb(15, 118, 110)"
    page.click("button:has-text('Unsubscribe')")
    expect(page.locator("h1")).to_have_text("You are unsubscribed")
    # Why, if they want to say: a choice and a few words.
    page.check("input[name=reason][value=too_many]")
    page.fill("#note", "Three mails in a week was a lot.")
    screenshot(page, "journey-unsubscribe-why")
    page.click("button:has-text('Send')")
    expect(page.locator(".notice")).to_have_text("Thank you for telling us.")
    left = db.session.scalar(select(Event).where(Event.kind == "unsubscribe"))
    assert (left.value, left.note) == ("too_many", "Three mails in a week was a lot.")
    # Changed their mind: mailable again, off the suppression list, consent recorded.
    page.click("button:has-text('Resubscribe')")
    expect(page.locator("h1")).to_have_text("Welcome back")
    db.session.expire_all()
    ana = db.session.scalar(select(Candidate).where(Candidate.email == "ana@example.org"))
    assert ana.status == "active" and ana.consent_source.startswith("resubscribed")
    assert count(Suppression) == 0
    screenshot(page, "journey-resubscribed")

    # A rating, then an answer to the one question that follows it.
    page.goto(rating)
    expect(page.locator("h1")).to_have_text("Thank you for your answer")
    page.fill("#answer", "The panel was kind, the take-home was too long.")
    page.click("button:has-text('Send my answer')")
    expect(page.locator("#answer-saved")).to_contain_text("your answer reached the team")
    given = db.session.scalar(select(Event).where(Event.kind == "rating"))
    assert given.value == "4"
    answer = db.session.scalar(select(FeedbackAnswer))
    assert answer.answer == "The panel was kind, the take-home was too long."
    screenshot(page, "journey-rating-comment")
    # A link cut in two by a mail program: a page that says so, in the company's colours.
    assert page.goto(unsubscribe[:-6]).status == 404
    expect(page.locator("h1")).to_have_text("This link does not work")
    context.close()
