"""Candidates in the admin, driven in a real Chromium: find, read the timeline, change, erase."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from nurture.core.audience import engagement
from nurture.core.audience.candidates import upsert_candidate
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment, Event, Message, Step
from tests.web.admin.conftest import login, screenshot


def now_of(app: Flask):
    return app.extensions["nurture.clock"].now()


def person(app: Flask, email: str, **fields: Any) -> Candidate:
    """A candidate created through the candidates service."""
    candidate, _ = upsert_candidate(db.session, {"email": email, **fields}, now_of(app))
    return candidate


def campaign(app: Flask, name: str, tag: str = "", status: str = "active") -> Campaign:
    """A one-step campaign; with ``tag``, candidates enter it by receiving that tag."""
    now = now_of(app)
    row = Campaign(
        name=name,
        kind="drip",
        status=status,
        entry_type="tag" if tag else "manual",
        entry_value=tag,
        created_at=now,
        updated_at=now,
        steps=[
            Step(position=0, delay_seconds=86400, template="check_in", subject=f"{name}: hello")
        ],
    )
    db.session.add(row)
    db.session.flush()
    return row


def fresh(model: Any, row_id: int) -> Any:
    """The row as the server left it (the test's session may hold an older copy)."""
    db.session.expire_all()
    return db.session.get(model, row_id)


def confirm_dialogs(page) -> list[str]:
    """Accept every confirm() and remember what it asked."""
    asked: list[str] = []

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def network(app: Flask, people: int = 64) -> None:
    """A talent network with enough people for two pages."""
    roles = ["Backend Engineer", "Product Designer", "Data Scientist", "Engineering Manager"]
    stages = ["screen", "onsite", "final interview"]
    for n in range(people):
        person(
            app,
            f"person{n:02d}@example.org",
            first_name=f"Person{n:02d}",
            last_name="Example",
            role=roles[n % 4],
            stage=stages[n % 3],
            source="referral" if n % 5 == 0 else "ats",
            skills=["python", "go"] if n % 4 == 0 else ["figma"],
            tags=["backend"] if n % 4 == 0 else ["design"],
        )
    person(
        app,
        "maya.okafor@example.org",
        first_name="Maya",
        last_name="Okafor",
        role="Senior Backend Engineer",
        stage="final interview",
        source="ats",
        skills=["python", "postgresql", "distributed systems"],
        tags=["silver-medalist", "backend"],
        timezone="Europe/London",
        recruiter_name="Jordan Lee",
        recruiter_email="jordan.lee@example.com",
        strengths="the clarity of your system-design walkthrough",
        rejection_reason="another finalist had more on-call experience",
        consent={
            "basis": "legitimate_interest",
            "source": "ats",
            "at": "2026-02-27T10:00:00+01:00",
        },
        attributes={"notice_period": "1 month", "open_to_relocation": True},
    )
    db.session.commit()


def maya(app: Flask) -> Candidate:
    return db.session.scalar(select(Candidate).where(Candidate.email == "maya.okafor@example.org"))


def timeline_for(app: Flask, candidate: Candidate) -> None:
    """Two mails and what came back from them."""
    now = now_of(app)
    drip = campaign(app, "Silver medalists")
    first = Message(
        candidate_id=candidate.id,
        campaign_id=drip.id,
        step_id=drip.steps[0].id,
        state="sent",
        subject="Maya, thank you from Acme",
        queued_at=now - timedelta(days=3),
        sent_at=now - timedelta(days=3),
    )
    second = Message(
        candidate_id=candidate.id,
        campaign_id=drip.id,
        step_id=drip.steps[0].id,
        state="failed",
        subject="Checking in",
        error="550 mailbox unavailable",
        queued_at=now - timedelta(hours=5),
    )
    db.session.add_all([first, second])
    db.session.flush()
    db.session.add_all(
        [
            Event(
                candidate_id=candidate.id,
                message_id=first.id,
                kind="open",
                machine=True,
                created_at=now - timedelta(days=3) + timedelta(minutes=1),
            ),
            Event(
                candidate_id=candidate.id,
                message_id=first.id,
                kind="open",
                created_at=now - timedelta(days=2),
            ),
            Event(
                candidate_id=candidate.id,
                message_id=first.id,
                kind="click",
                url="https://careers.example.com/jobs/42",
                created_at=now - timedelta(days=2) + timedelta(minutes=3),
            ),
            Event(
                candidate_id=candidate.id,
                message_id=first.id,
                kind="reply",
                value="Re: Maya, thank you from Acme",
                url="mid:reply-1@mail.example.org",
                created_at=now - timedelta(days=1),
            ),
            Event(
                candidate_id=candidate.id, kind="unsubscribe", created_at=now - timedelta(hours=1)
            ),
        ]
    )
    # Made here, not through tracking.record_event: bring the engagement summary up to date.
    engagement.rebuild_summary(db.session)
    db.session.commit()


def csrf_token(page) -> str:
    """The CSRF token any signed-in page carries (the sign-out form has one)."""
    return page.locator("input[name=csrf_token]").first.get_attribute("value")


# --- viewer: find, read, export; no way to change anything -----------------------------------


def test_viewer_searches_filters_sorts_pages_and_exports(page, live_app: Flask) -> None:
    network(live_app)
    login(page, "viewer")
    page.click("nav >> text=Candidates")
    page.wait_for_url("**/admin/candidates")
    assert page.locator("h1").inner_text() == "Candidates"
    assert "65 in the talent network" in page.locator(".page-head .sub").inner_text()
    assert page.locator("table.candidates tbody tr").count() == 50
    assert page.locator(".pager").inner_text().startswith("1–50 of 65")
    screenshot(page, "candidates-list")

    # Next page, then back to the first.
    page.click("text=Next →")
    page.wait_for_url("**page=2**")
    assert page.locator("table.candidates tbody tr").count() == 15
    assert "51–65 of 65" in page.locator(".pager").inner_text()

    # Search by skill, then narrow with a menu (it applies as soon as it changes).
    page.goto("/admin/candidates")
    page.fill("input[name=q]", "python")
    page.click("button:has-text('Apply')")
    page.wait_for_url("**q=python**")
    assert "17 matching" in page.locator(".page-head .sub").inner_text()
    page.select_option("select[name=source]", "referral")
    page.wait_for_url("**source=referral**")
    names = page.locator("table.candidates td.who a.name").all_inner_texts()
    assert names == ["Person60 Example", "Person40 Example", "Person20 Example", "Person00 Example"]
    page.select_option("select[name=stage]", "onsite")
    page.wait_for_url("**stage=onsite**")
    assert page.locator("table.candidates td.who a.name").all_inner_texts() == ["Person40 Example"]
    # A viewer is offered no bulk tag.
    assert page.locator(".bulk-tag").count() == 0

    # Sort by name by clicking the column header, twice for the other way.
    page.goto("/admin/candidates?tag=backend")
    page.click("th >> text=Candidate")
    page.wait_for_url("**sort=name**")
    first = page.locator("table.candidates td.who a.name").first.inner_text()
    assert first == "Maya Okafor"
    page.click("th >> text=Candidate")
    page.wait_for_url("**dir=desc**")
    assert page.locator("table.candidates td.who a.name").first.inner_text() == "Person60 Example"

    # Export what the filter shows: UTF-8 with a BOM, one row per match.
    with page.expect_download() as download:
        page.click("text=Export CSV")
    content = download.value.path().read_bytes().decode("utf-8")
    assert content.startswith("\ufeffemail,first_name,last_name,role,stage")
    rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    assert len(rows) == 17 and {r["tags"] for r in rows} >= {"backend;silver-medalist"}

    # Nonsense in the address bar is explained at the field, not a server error.
    answer = page.goto("/admin/candidates?status=asleep&sort=shoe_size")
    assert answer.status == 400
    alerts = page.locator("[role=alert]").all_inner_texts()
    assert any("unknown status 'asleep'" in a for a in alerts)
    assert any("cannot sort by 'shoe_size'" in a for a in alerts)


def test_viewer_reads_one_timeline_but_cannot_change_anything(page, live_app: Flask) -> None:
    network(live_app, people=3)
    candidate = maya(live_app)
    timeline_for(live_app, candidate)
    login(page, "viewer")
    page.goto("/admin/candidates?q=okafor")
    page.click("text=Maya Okafor")
    page.wait_for_url(f"**/admin/candidates/{candidate.id}")
    assert page.locator("h1").inner_text().startswith("Maya Okafor")
    profile = page.locator("section:has(h2:text('Profile'))").inner_text()
    for shown in (
        "Senior Backend Engineer",
        "final interview",
        "system-design walkthrough",
        "distributed systems",
        "Jordan Lee",
        "jordan.lee@example.com",
        "ats",
        "another finalist",
    ):
        assert shown in profile, shown
    consent = page.locator("section:has(h2:text('Consent'))").inner_text()
    assert "legitimate interest" in consent and "2026" in consent
    assert "notice_period" in page.locator("section:has(h2:text('Custom attributes'))").inner_text()

    # One timeline, oldest first, with the machine open marked and the clicked URL.
    entries = page.locator("ol.cand-timeline > li")
    assert entries.count() == 7
    texts = entries.all_inner_texts()
    assert "Sent" in texts[0] and "Maya, thank you from Acme" in texts[0]
    assert "Opened" in texts[1] and "machine" in texts[1]
    assert "Opened" in texts[2] and "machine" not in texts[2]
    assert "Clicked" in texts[3] and "https://careers.example.com/jobs/42" in texts[3]
    assert "Replied" in texts[4] and "Re: Maya, thank you from Acme" in texts[4]
    assert entries.nth(4).locator("a").count() == 0  # its mid: source is not a link
    assert "Failed" in texts[5] and "550 mailbox unavailable" in texts[5]
    assert "Unsubscribed" in texts[6]
    # Times are shown in the viewer's zone by admin.js (the UTC text is only the fallback).
    first_time = entries.first.locator("time")
    assert first_time.get_attribute("datetime").startswith("2026-02-27T09:00:00")
    assert "UTC" not in first_time.inner_text()
    screenshot(page, "candidates-detail")

    # A viewer sees no buttons to change anything...
    for label in ("Edit profile", "Mark hired", "Erase", "Enrol"):
        assert page.locator(f"button:has-text('{label}'), a:has-text('{label}')").count() == 0
    assert page.locator("form[action$='/tags']").count() == 0
    # ...and posting anyway, with a valid CSRF token, is forbidden.
    token = csrf_token(page)
    base = f"/admin/candidates/{candidate.id}"
    for path, form in [
        (f"{base}/hire", {}),
        (f"{base}/tags", {"tag": "x"}),
        (f"{base}/erase", {}),
        (f"{base}/edit", {"first_name": "X"}),
        ("/admin/candidates/bulk-tag?q=maya", {"new_tag": "x"}),
    ]:
        answer = page.request.post(path, form={"csrf_token": token, **form})
        assert answer.status == 403, path
    assert page.request.get(f"{base}/edit").status == 403
    assert fresh(Candidate, candidate.id).status == "active"


# --- editor: edit, tag, enrol, hire, bulk tag --------------------------------------------------


def test_editor_edits_tags_enrols_and_marks_hired(page, live_app: Flask) -> None:
    network(live_app, people=2)
    candidate = maya(live_app)
    campaign(live_app, "Backend pool", tag="backend-pool")
    campaign(live_app, "Newsletter")
    campaign(live_app, "Paused drip", status="paused")
    db.session.commit()
    asked = confirm_dialogs(page)
    login(page, "editor")
    page.goto(f"/admin/candidates/{candidate.id}")

    # A bad value is shown at its field and nothing is saved.
    page.click("text=Edit profile")
    page.wait_for_url("**/edit")
    assert page.input_value("input[name=first_name]") == "Maya"
    page.fill("input[name=first_name]", "Maya A.")
    page.fill("input[name=timezone]", "Mars/Olympus")
    page.fill("textarea[name=attributes]", '{"notice_period": ')
    page.click("button:has-text('Save profile')")
    error = page.locator(".field.has-error:has(input[name=timezone]) .error")
    assert "is not an IANA time zone" in error.inner_text()
    assert (
        "not valid JSON"
        in page.locator(".field.has-error:has(textarea[name=attributes]) .error").inner_text()
    )
    assert page.input_value("input[name=first_name]") == "Maya A."  # what was typed stays
    screenshot(page, "candidates-edit-errors")
    assert fresh(Candidate, candidate.id).first_name == "Maya"
    # Fixed: saved.
    page.fill("input[name=timezone]", "Europe/Paris")
    page.fill("textarea[name=attributes]", '{"notice_period": "2 weeks"}')
    page.fill("input[name=skills]", "Python, Rust")
    page.click("button:has-text('Save profile')")
    page.wait_for_url(f"**/admin/candidates/{candidate.id}")
    assert "Profile saved." in page.locator(".flash").inner_text()
    saved = fresh(Candidate, candidate.id)
    assert (saved.first_name, saved.timezone, saved.skills) == (
        "Maya A.",
        "Europe/Paris",
        ["python", "rust"],
    )
    assert saved.attributes == {"notice_period": "2 weeks"}

    # Tag: a tag-entry campaign enrols them; untag.
    page.fill("input[name=tag]", "Backend-Pool, referral")
    page.click("form.add-tag button")
    assert "Enrolled in 1 campaign" in page.locator(".flash").inner_text()
    chips = page.locator(".tag-list .chip").all_inner_texts()
    assert any(c.startswith("backend-pool") for c in chips)
    assert "Backend pool" in page.locator("ul.enrolments").inner_text()
    page.click("button[aria-label='Remove tag referral']")
    assert "Removed the tag “referral”" in page.locator(".flash").inner_text()
    assert set(fresh(Candidate, candidate.id).tag_names) == {
        "backend",
        "backend-pool",
        "silver-medalist",
    }
    # An empty tag is refused at the field.
    page.click("form.add-tag button")
    assert "type the tag to add" in page.locator("form.add-tag .error").inner_text()

    # Enrol by hand; twice says so clearly. Paused campaigns are not offered.
    options = page.locator("select[name=campaign_id] option").all_inner_texts()
    assert options == ["Backend pool", "Newsletter"]
    page.select_option("select[name=campaign_id]", label="Newsletter")
    page.click("form.enrol-form button")
    assert "Enrolled in “Newsletter”." in page.locator(".flash").inner_text()
    page.select_option("select[name=campaign_id]", label="Newsletter")
    page.click("form.enrol-form button")
    assert "already enrolled in “Newsletter”" in page.locator("form.enrol-form .error").inner_text()

    # Hired: confirmed first, then every drip stops.
    page.click("button:has-text('Mark hired')")
    page.wait_for_selector(".flash.success")
    assert asked and "Mark Maya A. Okafor as hired?" in asked[-1]
    assert "marked hired" in page.locator(".flash").inner_text()
    assert page.locator("h1 .badge").inner_text() == "hired"
    statuses = {
        e.status
        for e in db.session.scalars(
            select(Enrolment)
            .where(Enrolment.candidate_id == candidate.id)
            .execution_options(populate_existing=True)
        )
    }
    assert statuses == {"exited"}
    # Editors cannot erase.
    assert page.locator("button:has-text('Erase')").count() == 0
    assert (
        page.request.post(
            f"/admin/candidates/{candidate.id}/erase", form={"csrf_token": csrf_token(page)}
        ).status
        == 403
    )


def test_editor_tags_everyone_a_filter_matches_and_enrols_the_rows_ticked(
    page, live_app: Flask
) -> None:
    network(live_app, people=12)
    pool = campaign(live_app, "Backend pool", tag="backend-pool")
    by_hand = campaign(live_app, "Check-in by hand")
    db.session.commit()
    login(page, "editor")
    page.goto("/admin/candidates?q=backend")
    assert "4 matching" in page.locator(".page-head .sub").inner_text()
    bulk = page.locator("#bulk")
    assert "every matching candidate (4)" in bulk.inner_text()
    bulk.locator("input[name=new_tag]").fill("Backend-Pool")
    bulk.locator("button[value=tag]").click()
    page.wait_for_selector(".flash.success")
    flash = page.locator(".flash").inner_text()
    assert "Tagged 4 candidates “backend-pool” (every matching candidate)." in flash
    assert "4 enrolled in “Backend pool”." in flash
    assert "q=backend" in page.url  # still the same list
    db.session.expire_all()
    tagged = db.session.scalars(
        select(Candidate.email).where(Candidate.tags.any(name="backend-pool"))
    ).all()
    assert len(tagged) == 4 and all("example.org" in e for e in tagged)
    assert db.session.scalar(select(func.count()).where(Enrolment.campaign_id == pool.id)) == 4
    # A blank tag is explained, and nothing changes.
    page.locator("#bulk button[value=tag]").click()
    assert "type the tag to add" in page.locator(".flash.error").inner_text()

    # Two rows ticked: only they enter the drip, in one go.
    page.goto("/admin/candidates")
    boxes = page.locator("input[name=ids]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    assert page.locator("[data-bulk-count]").inner_text() == "2 ticked"
    assert page.locator("#bulk input[name=scope][value=ids]").is_checked()
    page.select_option("#bulk-campaign", str(by_hand.id))
    page.click("#bulk button[value=enrol]")
    page.wait_for_selector(".flash.success")
    assert "Enrolled 2 candidates in “Check-in by hand”." in page.locator(".flash").inner_text()
    assert db.session.scalar(select(func.count()).where(Enrolment.campaign_id == by_hand.id)) == 2
    # The same two again: nobody twice, and the page says why.
    boxes = page.locator("input[name=ids]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.select_option("#bulk-campaign", str(by_hand.id))
    page.click("#bulk button[value=enrol]")
    page.wait_for_selector(".flash.success")
    assert "Not enrolled: 2 already in it" in page.locator(".flash").inner_text()
    assert db.session.scalar(select(func.count()).where(Enrolment.campaign_id == by_hand.id)) == 2


# --- admin: erase ------------------------------------------------------------------------------


def test_admin_erases_a_candidate_after_confirming(page, live_app: Flask) -> None:
    network(live_app, people=1)
    candidate = maya(live_app)
    timeline_for(live_app, candidate)
    asked = confirm_dialogs(page)
    login(page, "admin")
    page.goto(f"/admin/candidates/{candidate.id}")
    page.click("button:has-text('Erase')")
    page.wait_for_selector(".flash.success")
    assert "Erase maya.okafor@example.org?" in asked[0]
    assert "Erased" in page.locator(".flash").inner_text()
    assert page.locator("h1 .badge").inner_text() == "erased"
    body = page.locator("main").inner_text()
    assert "Okafor" not in body and "maya.okafor@example.org" not in body
    assert page.locator("button:has-text('Edit profile'), a:has-text('Edit profile')").count() == 0
    # The ledger stays, without what the mail said.
    assert page.locator("ol.cand-timeline > li").count() == 7
    erased = fresh(Candidate, candidate.id)
    assert erased.status == "erased" and erased.tags == []
    assert re.fullmatch(r"erased-\d+@erased\.invalid", erased.email)
