"""A template in every language in the admin: add a language, write the translation, see it
refused at the field when it is wrong, preview it as a candidate gets it (footer in the same
language), save it, test-send it; a starter's translations previewed read-only."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import func, select

from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Message, TemplateTranslation
from nurture.tasks.sending import template_library
from tests.support.paths import ARTIFACTS, ROOT
from tests.web.admin.conftest import login, screenshot
from tests.web.admin.test_templates import add_candidates, frame_text

FRENCH = ROOT / "templates/emails/fr/talent_network_invite.html"


def screenshot_with_preview(page, name: str) -> None:
    """The page at 1280 and 390 px with the preview frames painted: Chromium paints sandboxed
    frames only inside the viewport, so the viewport is as tall as the page."""
    ARTIFACTS.mkdir(exist_ok=True)
    original = page.viewport_size
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": width, "height": min(height, 4000)})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size(original)


def team_template(app: Flask) -> int:
    """A team copy of the talent-network invite (its own parts in English, the team's)."""
    copy = template_service.duplicate_starter(
        db.session,
        template_library(app),
        MailSettings.from_config(app.config),
        "talent_network_invite",
        user_id=None,
        now=app.extensions["nurture.clock"].now(),
    )
    db.session.commit()
    return copy.id


def test_an_editor_adds_french_previews_saves_and_test_sends_it(
    page, live_app: Flask, smtp: SmtpCapture
) -> None:
    add_candidates(live_app)
    template_id = team_template(live_app)
    login(page, "editor")
    page.goto(f"/admin/templates/{template_id}")
    page.click("a:has-text('Languages')")
    page.wait_for_url(f"**/admin/templates/languages/template/{template_id}")
    assert "English (en)" in page.locator("table.data").inner_text()

    # The team's own language is the template itself, not a translation: said at the field.
    page.fill("input[name=language]", "en")
    page.click("text=Write this language")
    assert (
        "the team's language"
        in page.locator(".field:has(input[name=language]) .error").inner_text()
    )
    page.fill("input[name=language]", "klingon!")
    page.click("text=Write this language")
    assert "is not a language code" in page.locator(".field .error").inner_text()
    page.fill("input[name=language]", "FR")
    page.click("text=Write this language")
    page.wait_for_url(f"**/template/{template_id}/fr")
    # A new translation starts as a copy of the template, to write over.
    assert "We'd like to keep in touch" in page.locator("textarea[name=html]").input_value()

    # A mistake is refused at its field, with its line, and nothing is saved.
    french = FRENCH.read_text("utf-8")
    page.fill("input[name=subject]", "{{ candidate.prenom }}, restons en contact")
    page.fill("textarea[name=html]", french)
    page.fill("textarea[name=text]", "")
    page.click("button[value=save]")
    assert (
        "unknown variable candidate.prenom"
        in page.locator(".field:has(input[name=subject]) .error").inner_text()
    )
    assert db.session.scalar(select(func.count()).select_from(TemplateTranslation)) == 0

    page.fill("input[name=subject]", "{{ candidate.first_name }}, restons en contact")
    page.fill("input[name=candidate]", "zoe.martin@")
    page.click(".tpl-buttons button[value=preview]")
    page.wait_for_selector("#preview-subject")
    assert page.locator("#preview-subject").inner_text() == "Zoë, restons en contact"
    for frame in ("frame-desktop", "frame-phone"):
        text = frame_text(page, frame)
        assert "Bonjour Zoë" in text and "Se désabonner" in text and "Préférences e-mail" in text
    screenshot_with_preview(page, "translations-editor")

    page.click("button[value=save]")
    page.wait_for_selector(".flash.success")
    assert (
        "Saved talent_network_invite_copy in Français (fr)"
        in page.locator(".flash.success").inner_text()
    )
    db.session.expire_all()
    [saved] = db.session.scalars(select(TemplateTranslation)).all()
    assert (saved.language, saved.subject) == (
        "fr",
        "{{ candidate.first_name }}, restons en contact",
    )
    # The next mail to a French reader (any French) uses it; others keep the English.
    library = template_library(live_app)
    assert library.get("talent_network_invite_copy", language="fr-BE").language == "fr"
    assert library.get("talent_network_invite_copy", language="de").language == "en"

    # A test send in French, footer and all, through the real SMTP server; nothing recorded.
    page.fill("input[name=to]", "ops@example.com")
    page.click("button[value=test]")
    page.wait_for_selector(".flash.success")
    (sent,) = smtp.wait_for(1)
    message = sent.as_email()
    assert message["Subject"] == "[Test] Zoë, restons en contact"
    text = message.get_body(("plain",)).get_content()
    assert "Vous recevez cet e-mail parce que vous avez postulé chez" in text
    assert "Se désabonner" in text
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0

    page.goto(f"/admin/templates/languages/template/{template_id}")
    assert "Français (fr)" in page.locator("table.data").inner_text()
    assert "restons en contact" in page.locator("table.data").inner_text()
    screenshot(page, "translations-languages")


def test_a_starter_is_previewed_in_german_and_a_viewer_cannot_write(page, live_app: Flask) -> None:
    add_candidates(live_app)
    template_id = team_template(live_app)
    login(page, "viewer")
    page.goto("/admin/templates/starter/rejection_followup")
    page.click("a:has-text('Languages')")
    listed = page.locator("table.data").inner_text()
    assert all(name in listed for name in ("English (en)", "Deutsch (de)", "Français (fr)",
                                           "Español (es)"))  # fmt: skip
    page.click("tr:has-text('Deutsch') >> text=Preview")
    page.wait_for_url(re.compile(r"/starter/rejection_followup/de$"))
    assert "Danke für Ihre Zeit mit uns bei" in page.locator("#preview-subject").inner_text()
    assert "Hallo Inès" in frame_text(page, "frame-desktop")
    assert page.locator("textarea[name=html]").get_attribute("readonly") is not None
    screenshot_with_preview(page, "translations-starter-de")

    # A viewer reads the team template's languages but has nothing to write with.
    page.goto(f"/admin/templates/languages/template/{template_id}")
    assert page.locator("text=Add a language").count() == 0
    answer = page.request.post(
        f"/admin/templates/languages/template/{template_id}/fr", form={"html": "x"}
    )
    assert answer.status in (302, 400, 403)
    assert db.session.scalar(select(func.count()).select_from(TemplateTranslation)) == 0
