"""Templates in the admin: duplicate a starter, edit, validate, preview live, save, test-send."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import func, select

from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, EmailTemplate, Event, Message
from nurture.tasks.sending import template_library
from tests.web.admin.conftest import ARTIFACTS, PASSWORD, login, screenshot

GREETING = "<p>Hi {{ candidate.first_name }},</p>"


def add_candidates(app: Flask) -> None:
    now = app.extensions["nurture.clock"].now()
    for email, first, last, role in (
        ("ines.duarte@example.org", "Inès", "Duarte", "Data Engineer"),
        ("zoe.martin@example.org", "Zoë", "Martin", "Staff Product Designer"),
    ):
        db.session.add(
            Candidate(
                email=email,
                first_name=first,
                last_name=last,
                role=role,
                created_at=now,
                updated_at=now,
            )
        )
    db.session.commit()


def screenshot_with_preview(page, name: str) -> None:
    """``screenshot()``, with the preview frames in view at each width.

    Chromium paints sandboxed (out-of-process) frames only inside the viewport, even in a
    full-page capture; at 390 px the viewport is taller so that both frames fit in it.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    original = page.viewport_size
    for width, height in ((1280, 900), (390, 1400)):
        page.set_viewport_size({"width": width, "height": height})
        page.locator(".tpl-frames").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(original)
    page.evaluate("window.scrollTo(0, 0)")


def frame_text(page, frame_id: str) -> str:
    return page.frame_locator(f"#{frame_id}").locator("body").inner_text()


def test_editor_duplicates_edits_previews_saves_and_test_sends(
    page, live_app: Flask, smtp: SmtpCapture
) -> None:
    add_candidates(live_app)
    login(page, "editor")
    page.goto("/admin/templates")
    page.click("#starters >> text=rejection_followup")
    # Editors edit a starter in place; duplicating makes a template of their own.
    assert page.locator("textarea[name=html]").get_attribute("readonly") is None
    # The starter is previewed for the first active candidate straight away.
    assert "Hi Inès" in frame_text(page, "frame-desktop")
    page.click("text=Duplicate as a new template")
    page.wait_for_url(re.compile(r"/admin/templates/\d+$"))
    assert page.locator("h1").inner_text().startswith("rejection_followup_copy")

    # An unknown variable: refused live, at the field, with the line the editor shows.
    html = page.locator("textarea[name=html]").input_value()
    assert GREETING in html
    line = html[: html.index(GREETING)].count("\n") + 1
    page.fill(
        "textarea[name=html]",
        html.replace(
            GREETING,
            "<p>Hi {{ candidate.first_name }}, your {{ candidate.favourite_color }} deck "
            "stayed with us.</p>",
        ),
    )
    page.locator(".tpl-buttons button[data-preview]").click()
    error = page.locator(".field:has(textarea[name=html]) .error")
    error.wait_for()
    assert error.inner_text().startswith(
        f"line {line}: unknown variable candidate.favourite_color; known: candidate.first_name"
    )
    # …and on save, where nothing is written.
    page.click("button[value=save]")
    assert "unknown variable candidate.favourite_color" in error.inner_text()
    assert f"line {line}:" in error.inner_text()
    assert db.session.scalar(select(EmailTemplate.html)) == html

    # Fixed, and previewed for a chosen candidate at both widths.
    fixed = html.replace(
        GREETING,
        "<p>Hi {{ candidate.first_name }}, your work on {{ candidate.role }} stayed with us.</p>",
    )
    page.fill("textarea[name=html]", fixed)
    page.fill("input[name=candidate]", "zoe.martin@")
    page.press("input[name=candidate]", "Enter")  # previews (never saves)
    page.wait_for_function("() => document.getElementById('frame-phone').srcdoc.includes('Zoë')")
    assert page.locator(".field:has(textarea[name=html]) .error").count() == 0
    for frame in ("frame-desktop", "frame-phone"):
        text = frame_text(page, frame)
        assert "Hi Zoë, your work on Staff Product Designer stayed with us." in text
    widths = page.evaluate(
        "['frame-desktop', 'frame-phone'].map(id => document.getElementById(id).offsetWidth)"
    )
    assert widths == [800, 390]
    assert page.get_attribute("#frame-desktop", "sandbox") == ""
    assert "Zoë Martin" in page.locator("#preview-candidate").inner_text()
    assert page.locator("#preview-subject").inner_text().startswith("Thank you for your time")
    screenshot_with_preview(page, "templates-editor")

    page.click("button[value=save]")
    page.wait_for_selector(".flash.success")
    assert "Saved rejection_followup_copy" in page.locator(".flash.success").inner_text()
    db.session.expire_all()
    assert "stayed with us" in db.session.scalar(select(EmailTemplate.html))
    assert page.locator("input[name=candidate]").input_value() == "zoe.martin@"

    # A test send to any address, for the chosen candidate, through the real SMTP server.
    page.fill("input[name=to]", "Recruiting.Ops@Example.com")
    page.press("input[name=to]", "Enter")  # sends the test (never saves)
    page.wait_for_selector(".flash.success")
    assert "[Test]" in page.locator(".flash.success").inner_text()
    (sent,) = smtp.wait_for(1)
    message = sent.as_email()
    assert sent.rcpt_tos == ["recruiting.ops@example.com"]
    assert message["Subject"].startswith("[Test] Thank you for your time")
    assert "Hi Zoë, your work on" in message.get_body(("html",)).get_content()
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0

    page.goto("/admin/templates")
    assert page.locator("#team").inner_text().startswith("rejection_followup_copy")
    screenshot(page, "templates-list")


def test_a_suppressed_address_gets_no_test(page, live_app: Flask, smtp: SmtpCapture) -> None:
    from nurture.core.compliance.suppressions import suppress

    suppress(
        db.session, "gone@example.org", "unsubscribed", live_app.extensions["nurture.clock"].now()
    )
    db.session.commit()
    login(page, "editor")
    page.goto("/admin/templates/starter/checkin_3_months")
    page.fill("input[name=to]", "gone@example.org")
    page.click("text=Send test")
    error = page.locator(".field:has(input[name=to]) .error")
    assert "suppression list" in error.inner_text()
    assert smtp.messages == []


def test_a_viewer_previews_but_cannot_change_anything(page, live_app: Flask) -> None:
    add_candidates(live_app)
    now = live_app.extensions["nurture.clock"].now()
    template = template_service.save_template(
        db.session,
        template_library(live_app),
        MailSettings.from_config(live_app.config),
        {
            "name": "team-note",
            "html": template_service.SKELETON,
            "subject": "For {{ candidate.first_name }}",
        },
        template=None,
        user_id=None,
        now=now,
    )
    db.session.commit()
    login(page, "viewer")
    page.goto("/admin/templates")
    assert page.locator("text=New template").count() == 0
    page.click("#team >> text=team-note")
    assert page.locator("button[value=save]").count() == 0
    assert page.locator("text=Delete").count() == 0
    assert page.locator("#test-send").count() == 0
    assert page.locator("textarea[name=html]").get_attribute("readonly") is not None
    page.fill("input[name=candidate]", "zoe")
    page.locator("#preview-pick button[data-preview]").click()
    page.wait_for_function("() => document.getElementById('frame-desktop').srcdoc.includes('Zoë')")
    assert "Hi Zoë" in frame_text(page, "frame-phone")
    assert page.locator("#preview-subject").inner_text() == "For Zoë"

    # Posting anyway, with a valid CSRF token, is refused.
    token = page.get_attribute("#preview", "data-csrf")
    for path in (
        f"/admin/templates/{template.id}",
        "/admin/templates/new",
        f"/admin/templates/{template.id}/delete",
        "/admin/templates/starter/newsletter/duplicate",
        "/admin/templates/starter/newsletter/test",
        "/admin/templates/preview",  # viewers preview saved templates, not content of their own
    ):
        answer = page.request.post(
            path,
            form={
                "csrf_token": token,
                "name": "x",
                "html": "x",
                "to": "me@example.com",
                "action": "save",
            },
        )
        assert answer.status == 403, path
    assert db.session.scalar(select(func.count()).select_from(EmailTemplate)) == 1
    assert page.goto("/admin/templates/new").status == 403


def signed_in(app: Flask, role: str = "editor"):
    client = app.test_client()
    page = client.get("/admin/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    client.post(
        "/admin/login",
        data={"email": f"{role}@example.com", "password": PASSWORD, "csrf_token": token},
    )
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)[1]


def test_without_javascript_preview_and_errors_come_back_in_the_page(
    live_app: Flask, smtp: SmtpCapture
) -> None:
    add_candidates(live_app)
    client = signed_in(live_app)
    form = client.get("/admin/templates/new").text
    assert "{% extends &#34;layout.html&#34; %}" in form  # the skeleton
    data = {
        "csrf_token": csrf_of(form),
        "name": "silver note",
        "subject": "For {{ candidate.first_name }}",
        "html": template_service.SKELETON.replace("\n", "\r\n"),
        "candidate": "zoe.martin@example.org",
        "action": "preview",
    }
    answer = client.post("/admin/templates/new", data=data)
    assert answer.status_code == 200
    assert answer.text.count("Hi Zoë,") == 3  # both frames' srcdoc and the text part
    assert "For Zoë" in answer.text
    data["action"] = "save"
    answer = client.post("/admin/templates/new", data=data)
    assert answer.status_code == 422
    assert "use letters, digits, - and _ only" in answer.text
    assert db.session.scalar(select(func.count()).select_from(EmailTemplate)) == 0
    data["name"] = "silver-note"
    answer = client.post("/admin/templates/new", data=data)
    assert answer.status_code == 302
    saved = db.session.scalar(select(EmailTemplate))
    assert "\r" not in saved.html and saved.subject == "For {{ candidate.first_name }}"
    # A test send the relay refuses is reported, and nothing is saved by it.
    smtp.fail_next("554 5.7.1 relay denied")
    data.update(action="test", to="me@example.com", html=data["html"].replace("Hi", "Hello"))
    answer = client.post(f"/admin/templates/{saved.id}", data=data)
    assert answer.status_code == 502
    assert "did not take the test: SMTPDataError: (554" in answer.text
    assert "Hello {{ candidate.first_name }}" in answer.text  # the editor keeps its content
    db.session.expire_all()
    assert "Hello" not in db.session.get(EmailTemplate, saved.id).html
    assert client.get("/admin/templates/starter/layout").status_code == 404
    assert client.get("/admin/templates/starter/nope").status_code == 404
    assert client.get("/admin/templates/999").status_code == 404
    # The JSON preview refuses a form without its CSRF token.
    assert (
        client.post("/admin/templates/preview", data={"starter": "newsletter"}).status_code == 400
    )
