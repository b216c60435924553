"""CSV import in the browser: upload, mapping, dry run, import with a progress bar, roles."""

from __future__ import annotations

import re

from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import func, select

from nurture.extensions import db
from nurture.models import Candidate, Import, User
from nurture.tasks import get_queue, get_redis
from nurture.tasks.worker import SendWorker
from nurture.workflows import imports as import_service
from tests.support.paths import FIXTURES
from tests.web.admin.conftest import login, screenshot

FIXTURE = FIXTURES / "candidates.csv"


def _candidates() -> int:
    db.session.remove()  # a fresh session sees what the server committed
    return db.session.scalar(select(func.count()).select_from(Candidate))


def _upload(page, name: str, data: bytes, mime: str = "text/csv") -> None:
    page.set_input_files(
        "input[name=file]", files=[{"name": name, "mimeType": mime, "buffer": data}]
    )
    page.click("button:has-text('Upload and map columns')")


def test_an_editor_imports_a_csv_with_two_bad_rows(page, live_app: Flask) -> None:
    login(page, "editor")
    page.click("nav >> text=Imports")
    page.wait_for_url("**/admin/imports")
    expect(page.locator(".empty")).to_contain_text("No imports yet")
    page.locator("a:has-text('Import a CSV file')").first.click()
    page.wait_for_url("**/admin/imports/new")
    screenshot(page, "imports-upload")

    # Upload: the file is checked and stored; nothing is imported yet.
    page.set_input_files("input[name=file]", str(FIXTURE))
    page.click("button:has-text('Upload and map columns')")
    page.wait_for_url(re.compile(r"/admin/imports/\d+/mapping$"))
    assert _candidates() == 0
    mapping = page.locator("table.import-mapping")
    expect(mapping.locator("tr", has_text="E-mail").locator("select")).to_have_value("email")
    expect(mapping.locator("tr", has_text="Team").locator("select")).to_have_value("attribute")

    # Adjust one mapping and add a tag; the preview follows.
    page.get_by_label("Team", exact=True).select_option("tags")
    page.fill("input[name=tags]", "Spring-2026")
    page.click("button:has-text('Update preview')")
    expect(page.locator(".flash.success")).to_contain_text("Mapping saved")
    expect(mapping.locator("tr", has_text="Team").locator("select")).to_have_value("tags")
    preview = page.locator("table.import-preview tbody tr:not(.reasons)")
    expect(preview).to_have_count(5)
    first = preview.nth(0)
    expect(first).to_contain_text("ana.lima@example.org")
    expect(first.locator(".chip", has_text="platform")).to_be_visible()
    expect(first.locator(".chip", has_text="spring-2026")).to_be_visible()
    expect(preview.nth(4)).to_have_class(re.compile(r"\bbad\b"))
    reasons = page.locator("table.import-preview tr.reasons")
    expect(reasons).to_have_count(1)
    expect(reasons).to_contain_text("Line 6 · E-mail There must be something after the @-sign.")
    screenshot(page, "imports-mapping")

    # The dry run: every row checked, the two bad ones named with line and column.
    page.click("button:has-text('Check every row')")
    page.wait_for_url(re.compile(r"/admin/imports/\d+/check$"))
    errors = page.locator("table.import-errors tbody tr")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("6")
    expect(errors.nth(0)).to_contain_text("E-mail")
    expect(errors.nth(0)).to_contain_text("There must be something after the @-sign.")
    expect(errors.nth(1)).to_contain_text("14")
    expect(errors.nth(1)).to_contain_text("Timezone")
    expect(errors.nth(1)).to_contain_text("not an IANA time zone")
    expect(page.locator("[data-count=create]")).to_have_text("18")
    expect(page.locator("[data-count=rejected]")).to_have_text("2")
    assert _candidates() == 0
    screenshot(page, "imports-dryrun")

    # Import: the job is queued, a worker runs it, the progress bar follows to the end.
    page.click("button:has-text('Import 18 good rows')")
    page.wait_for_url(re.compile(r"/admin/imports/\d+$"))
    expect(page.locator("#progress-label")).to_have_text("Waiting for a worker…")
    # Without JavaScript the page refreshes itself until the import ends.
    assert page.locator("noscript").count() == 1 and 'http-equiv="refresh"' in page.content()
    progress_url = page.url + "/progress"
    waiting = page.request.get(progress_url).json()
    assert (waiting["status"], waiting["processed_rows"], waiting["total_rows"]) == (
        "running",
        0,
        20,
    )
    screenshot(page, "imports-progress")
    live_app.config["IMPORT_BATCH_SIZE"] = 5  # four batches, each committed with its progress
    worker = SendWorker([get_queue(live_app)], connection=get_redis(live_app))
    assert worker.work(burst=True, with_scheduler=False)
    finished = page.request.get(progress_url).json()
    assert (finished["status"], finished["processed_rows"], finished["percent"]) == (
        "done",
        20,
        100,
    )
    expect(page.locator("h1")).to_have_text("Import of candidates.csv", timeout=10000)
    expect(page.locator("#progress-label")).to_have_text("Done")
    assert page.locator("#progress-bar").evaluate("bar => bar.style.width") == "100%"
    expect(page.locator("#count-created")).to_have_text("18")
    expect(page.locator("#count-rejected")).to_have_text("2")
    done_errors = page.locator("table.import-errors tbody tr")
    expect(done_errors).to_have_count(2)
    expect(done_errors.nth(1)).to_contain_text("Timezone")
    screenshot(page, "imports-done")

    assert _candidates() == 18
    ana = db.session.scalar(select(Candidate).where(Candidate.email == "ana.lima@example.org"))
    assert ana.tag_names == ["platform", "spring-2026"]
    assert ana.attributes == {"linkedin": "https://www.linkedin.com/in/analima"}

    page.click("nav >> text=Imports")
    row = page.locator("table.imports-list tbody tr").first
    expect(row).to_contain_text("candidates.csv")
    expect(row.locator(".badge")).to_have_text("done")
    expect(row).to_contain_text("editor@example.com")
    screenshot(page, "imports-list")


def test_bad_uploads_and_mappings_are_refused_at_their_field(page, live_app: Flask) -> None:
    login(page, "editor")
    page.goto("/admin/imports/new")
    page.click("button:has-text('Upload and map columns')")
    expect(page.locator(".field.has-error .error")).to_have_text("Choose a CSV file to upload.")
    _upload(page, "cv.pdf", b"%PDF-1.4", "application/pdf")
    expect(page.locator(".field.has-error .error")).to_contain_text("Upload a .csv or .txt file")
    _upload(page, "people.csv", b"PK\x03\x04\x14\x00\x06\x00workbook")
    expect(page.locator(".field.has-error .error")).to_contain_text("not a CSV file")
    screenshot(page, "imports-upload-error")
    _upload(page, "people.csv", b"")
    expect(page.locator(".field.has-error .error")).to_have_text("The file is empty.")
    _upload(page, "people.csv", b"ana@example.org,Ana\n")
    expect(page.locator(".field.has-error .error")).to_contain_text("not column names")
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0

    _upload(page, "people.csv", b"Email,Work email,Name\nana@example.org,a@acme.test,Ana Lima\n")
    page.wait_for_url(re.compile(r"/mapping$"))
    page.get_by_label("Work email", exact=True).select_option("email")
    page.fill("input[name=tags]", "x" * 120)
    page.click("button:has-text('Check every row')")
    row = page.locator("table.import-mapping tr", has_text="Work email")
    expect(row.locator(".error")).to_contain_text("Email is already taken by the column “Email”")
    expect(page.locator(".field.has-error .error").last).to_contain_text("at most 100")
    screenshot(page, "imports-mapping-error")
    page.get_by_label("Work email", exact=True).select_option("")
    page.get_by_label("Email", exact=True).select_option("")
    page.fill("input[name=tags]", "")
    page.click("button:has-text('Check every row')")
    expect(page.locator("#mapping-error")).to_contain_text("Map one column to Email")
    db.session.remove()
    job = db.session.scalar(select(Import))
    # Nothing half-saved: the refused mappings left the proposal as it was.
    assert job.mapping == {"Email": "email", "Work email": "attribute", "Name": "full_name"}
    assert job.tags == []


def test_a_viewer_cannot_import(page, live_app: Flask) -> None:
    editor = db.session.scalar(select(User).where(User.email == "editor@example.com"))
    job, _ = import_service.create_import(
        db.session,
        FIXTURE.read_bytes(),
        "candidates.csv",
        live_app.extensions["nurture.clock"].now(),
        created_by_id=editor.id,
    )
    db.session.commit()
    login(page, "viewer")
    expect(page.locator("nav >> text=Imports")).to_have_count(0)
    for path in (
        "/admin/imports",
        "/admin/imports/new",
        f"/admin/imports/{job.id}/mapping",
        f"/admin/imports/{job.id}/check",
        f"/admin/imports/{job.id}/progress",
    ):
        assert page.goto(path).status == 403, path
    page.goto("/admin/")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"/admin/imports/{job.id}/start", form={"csrf_token": token})
    assert answer.status == 403
    assert _candidates() == 0
    assert db.session.get(Import, job.id).status == "uploaded"
