"""Job alerts in the admin: create an opening, review the ranked list, remove, add, send once."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Candidate, Enrolment
from nurture.models.openings import Opening, OpeningMatch
from nurture.workflows.candidates import save_candidate
from tests.web.admin.conftest import login, screenshot

PEOPLE = [
    (
        "ana@example.org",
        "Ana",
        "Data Engineer",
        "Berlin, Germany",
        "final interview",
        ["python", "sql", "airflow"],
    ),
    ("bo@example.org", "Bo", "Backend developer", "Lisbon, Portugal", "onsite", ["python", "sql"]),
    ("chen@example.org", "Chen", "Data analyst", "Munich, Germany", "phone screen", ["sql"]),
    ("dee@example.org", "Dee", "Designer", "Berlin, Germany", "", ["figma"]),
    ("eli@example.org", "Eli", "Analytics engineer", "Hamburg, Germany", "", ["dbt", "sql"]),
]


def seed(app) -> None:
    now = app.extensions["nurture.clock"].now()
    for email, first, role, location, stage, skills in PEOPLE:
        save_candidate(
            db.session,
            {
                "email": email,
                "first_name": first,
                "last_name": "Example",
                "role": role,
                "location": location,
                "stage": stage,
                "skills": skills,
            },
            now,
        )
    db.session.commit()
    # Eli turned job alerts off in the preference centre: never proposed, cannot be added.
    eli = db.session.scalar(select(Candidate).where(Candidate.email == "eli@example.org"))
    eli.topics = {"job_alerts": False}
    db.session.commit()


def rows(page) -> list[str]:
    return page.locator("table.job-review tbody tr:not(.removed) td.who strong").all_inner_texts()


def test_create_review_remove_add_and_send_a_job_alert(
    page, live_app, live_server, browser
) -> None:
    seed(live_app)
    login(page, "editor")
    page.click("nav >> text=Job alerts")
    page.wait_for_url("**/admin/jobs")

    # Mistakes are shown at their fields and nothing is saved.
    page.fill("#title", "Senior Data Engineer")
    page.fill("#url", "careers.example.com/jobs/7")
    page.click("text=Find matching candidates")
    assert page.locator(".field:has(#url) .error").inner_text() == (
        "Must be an http:// or https:// address"
    )
    assert "at least one skill" in page.locator(".field:has(#skills) .error").inner_text()
    assert "remote" in page.locator(".field:has(#location) .error").inner_text()
    assert page.locator("#title").input_value() == "Senior Data Engineer"
    assert db.session.scalar(select(func.count()).select_from(Opening)) == 0
    screenshot(page, "jobs-create-errors")

    page.fill("#role_family", "data")
    page.fill("#skills", "python, sql, airflow")
    page.fill("#location", "Berlin, Germany")
    page.fill("#url", "https://careers.example.com/jobs/7")
    page.fill("#summary", "Own the pipelines behind our matching, with a team of six.")
    page.click("text=Find matching candidates")
    page.wait_for_url("**/admin/jobs/*")
    assert "3 candidates to review" in page.locator(".flash").inner_text()
    assert rows(page) == ["Ana Example", "Bo Example", "Chen Example"]
    first = page.locator("table.job-review tbody tr").first
    assert "3 of 3 skills: airflow, python, sql" in first.inner_text()
    assert "same city: Berlin" in first.inner_text()
    assert "reached final interview" in first.inner_text()

    # Remove Bo; an opted-out candidate cannot be added, someone else can.
    # Removed in place: the row and the counts change, the page does not reload.
    page.evaluate("window.notReloaded = true")
    page.locator("tr:has-text('bo@example.org') >> text=Remove").click()
    expect(page.locator("tr.removed")).to_have_count(1)
    assert rows(page) == ["Ana Example", "Chen Example"]
    assert page.locator("[data-count=matches]").inner_text() == "2"
    assert page.evaluate("window.notReloaded") is True
    page.fill("#email", "eli@example.org")
    page.click("text=Add to list")
    assert "cannot be mailed job alerts" in page.locator(".field:has(#email) .error").inner_text()
    page.fill("#email", "dee@example.org")
    page.click("text=Add to list")
    assert rows(page)[-1] == "Dee Example"
    assert "added by a recruiter" in page.locator("tr:has-text('dee@example.org')").inner_text()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "jobs-review")

    page.click("text=Send alert to 3 candidates…")
    assert page.locator("[data-impact=pending]").inner_text() == "3"
    screenshot(page, "jobs-send-confirm")
    page.click("button:has-text('Send to 3 candidates')")
    assert "goes out to 3 candidates" in page.locator(".flash").inner_text()
    # Nobody is left to approve, and the page says where the alert is instead.
    assert page.locator("[data-send-label]").inner_text() == "Everyone is getting it: 0 sent so far"
    job = db.session.scalar(select(Opening))
    enrolled = set(
        db.session.scalars(
            select(Candidate.email).join(Enrolment, Enrolment.candidate_id == Candidate.id)
        )
    )
    assert enrolled == {"ana@example.org", "chen@example.org", "dee@example.org"}

    # Sending again (a double click, a stale tab) enrols nobody twice.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    again = page.request.post(
        f"{live_server.url}/admin/jobs/{job.id}/send", form={"csrf_token": token}
    )
    assert again.ok
    assert db.session.scalar(select(func.count()).select_from(Enrolment)) == 3

    # A viewer reads the list with its reasons but has no buttons, and POSTs are refused.
    viewer = browser.new_context(
        viewport={"width": 390, "height": 900}, base_url=live_server.url
    ).new_page()
    login(viewer, "viewer")
    viewer.goto(f"/admin/jobs/{job.id}")
    assert "3 of 3 skills" in viewer.locator("table.job-review").inner_text()
    assert viewer.locator("button:has-text('Remove')").count() == 0
    assert viewer.locator("#new-job").count() == 0
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    chen = db.session.scalar(select(Candidate.id).where(Candidate.email == "chen@example.org"))
    for path in (
        f"/admin/jobs/{job.id}/matches/{chen}/exclude",
        f"/admin/jobs/{job.id}/send",
        f"/admin/jobs/{job.id}/matches",
        "/admin/jobs",
    ):
        answer = viewer.request.post(
            live_server.url + path,
            form={"csrf_token": token, "email": "dee@example.org", "title": "x"},
        )
        assert answer.status == 403, path
    viewer.context.close()
    db.session.expire_all()
    assert (
        db.session.scalar(
            select(func.count()).select_from(OpeningMatch).where(OpeningMatch.excluded.is_(True))
        )
        == 1
    )
    assert db.session.scalar(select(func.count()).select_from(Opening)) == 1
