"""Templates per candidate language, end to end: a language on the candidate (API, ATS, CSV),
checked and spelt one way; a step's translations by API; the translation chosen at send time
(the candidate's language, else the team's, else the template's own); a German candidate's
mail as received through real SMTP (subject, body, footer) and the unsubscribe page it links
to, in German."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from html import unescape

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.content.rendering import TemplateLibrary
from nurture.core.content.templates import preview_context, sample_candidate, trial_settings
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, CandidateStatus
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import ats_post, auth_headers, make_app
from tests.support.workers import drain

TEMPLATES = "templates/emails"


def _count() -> int:
    return db.session.scalar(select(func.count()).select_from(Candidate))


def _candidate(email: str) -> Candidate:
    db.session.expire_all()
    return db.session.scalar(select(Candidate).where(Candidate.email == email))


# --- the candidate's language ---------------------------------------------------------------------


def test_the_api_ats_and_csv_take_a_language_and_a_bad_one_is_named(app: Flask, client) -> None:
    editor = auth_headers(app, "editor")
    made = client.post(
        "/api/v1/candidates",
        json={"email": "lena@example.org", "language": "de_at"},
        headers=editor,
    )
    assert made.status_code == 201, made.json
    assert made.json["language"] == "de-AT"  # stored in its usual spelling

    for bad in ("german", "de-", "x", "en-US-POSIX"):
        refused = client.post(
            "/api/v1/candidates", json={"email": "max@example.org", "language": bad}, headers=editor
        )
        assert refused.status_code == 422, bad
        assert "is not a language code" in refused.json["error"]["fields"]["language"], bad
    assert _count() == 1  # nothing was written

    # The ATS says so with the rejection; a CSV column called "Sprache" is understood.
    event = {"type": "candidate.rejected", "candidate": {"email": "ines@example.org",
                                                         "language": "pt-br"}}  # fmt: skip
    assert ats_post(client, event).status_code in (200, 202)
    assert _candidate("ines@example.org").language == "pt-BR"
    csv = "E-mail,Vorname,Sprache\nclaire@example.org,Claire,FR\nbad@example.org,Bad,nope!\n"
    report = client.post(
        "/api/v1/candidates/import",
        data={"file": (io.BytesIO(csv.encode()), "people.csv")},
        headers=editor,
        content_type="multipart/form-data",
    ).json
    assert report["mapping"]["Sprache"] == "language"
    assert report["created"] == 1 and _candidate("claire@example.org").language == "fr"
    [rejected] = report["rejected"]
    assert rejected["field"] == "Sprache" and "is not a language code" in rejected["reason"]
    assert _candidate("bad@example.org") is None


def test_step_translations_by_api_are_checked_field_by_field(app: Flask, client) -> None:
    editor = auth_headers(app, "editor")
    campaign = {
        "name": "Follow-up",
        "entry": {"ats_event": "candidate.rejected"},
        "steps": [
            {
                "template": "rejection_followup",
                "translations": {
                    "DE": {"subject": "Danke, {{ candidate.frist_name }}"},
                    "klingon!": {"subject": "x"},
                    "fr": {"subject": "Merci", "html": "<p>Bonjour</p>"},
                },
            }
        ],
    }
    refused = client.post("/api/v1/campaigns", json=campaign, headers=editor)
    assert refused.status_code == 422
    fields = refused.json["error"]["fields"]
    assert "unknown variable candidate.frist_name" in fields["steps[0].translations.DE.subject"]
    assert "is not a language code" in fields["steps[0].translations.klingon!"]
    assert "translated in the template" in fields["steps[0].translations.fr.html"]

    campaign["steps"][0]["translations"] = {"DE": {"subject": "Danke, {{ candidate.first_name }}"}}
    made = client.post("/api/v1/campaigns", json=campaign, headers=editor)
    assert made.status_code == 201, made.json
    shown = client.get(f"/api/v1/campaigns/{made.json['id']}", headers=editor).json
    assert shown["steps"][0]["translations"] == {
        "de": {"subject": "Danke, {{ candidate.first_name }}"}
    }
    document = client.get("/api/v1/openapi.json").json
    assert "StepTranslationIn" in str(document) and "language" in str(document)


# --- choosing the translation ---------------------------------------------------------------------


def test_the_translation_is_chosen_by_language_with_fallbacks_and_compiled_once_each() -> None:
    team = {"welcome": ('{% extends "layout.html" %}{% block content %}<p>Hallo</p>{% endblock %}',
                        None, "Willkommen")}  # fmt: skip
    translated = {"welcome": {"es": ('{% extends "layout.html" %}{% block content %}<p>Hola'
                                     "</p>{% endblock %}", None, "Bienvenida")}}  # fmt: skip
    library = TemplateLibrary(
        TEMPLATES, sources=team.get, translations=lambda n: translated.get(n, {}),
        default_language="de",
    )  # fmt: skip
    # The team writes in German: its own template is the German one, Spanish is a translation,
    # and a language nobody wrote (Italian) gets the team's.
    assert library.get("welcome", language="es-MX").language == "es"
    assert library.get("welcome", language="it").language == "de"
    assert library.get("welcome", language="").language == "de"
    # A starter file is English, with German, French and Spanish beside it; the team's language
    # is the fallback before English.
    assert library.get("rejection_followup", language="fr-CA").language == "fr"
    assert library.get("rejection_followup", language="it").language == "de"
    before = library.compilations
    for _ in range(3):
        for language in ("de", "fr", "es", "it", "pt-BR"):
            library.get("rejection_followup", language=language)
    # One compilation per version and language: only Spanish is new here (fr and de above;
    # Italian and Brazilian readers get the German one).
    assert library.compilations - before == 1

    # Every starter reads naturally in each language: no English left in a translation's
    # greeting or footer, and no empty "Hallo ," when the first name is missing.
    settings = trial_settings({"COMPANY_NAME": "Acme"})
    nameless = sample_candidate()
    nameless.first_name = ""
    for name in library.names():
        for language, hello, footer in (
            ("de", "Hallo,", "weil Sie sich bei Acme beworben haben"),
            ("fr", "Bonjour,", "parce que vous avez postulé chez Acme"),
            ("es", "Hola:", "porque solicitaste un puesto en Acme"),
        ):
            compiled = library.get(name, language=language)
            assert compiled.language == language
            mail = compiled.render(preview_context(settings, None, nameless, language=language))
            assert hello in mail.text and footer in mail.text, (name, language)
            assert f'<html lang="{language}">' in mail.html
            assert "there" not in mail.text.split("----")[0], (name, language)


# --- a real send ----------------------------------------------------------------------------------


@pytest.fixture
def system(sqlite_url, clock, redis_url, smtp: SmtpCapture) -> Iterator[Flask]:
    app = make_app(
        sqlite_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, FREQUENCY_CAP={},
        COMPANY_NAME="Acme", SENDER_EMAIL="talent@acme.example.com",
    )  # fmt: skip
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


FOLLOW_UP = {
    "name": "Rejection follow-up",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {
            "delay": "PT0S",
            "template": "rejection_followup",
            "subject": "{{ candidate.first_name }}, thank you from {{ company.name }}",
            "translations": {"de": {"subject": "{{ candidate.first_name }}, danke von Acme"}},
        }
    ],
}
PEOPLE = [
    {"email": "lena@example.org", "first_name": "Lena", "role": "Data Engineer",
     "language": "de", "strengths": "Ihre klare Architektur-Skizze"},
    {"email": "joao@example.org", "first_name": "João", "role": "Designer", "language": "pt-BR"},
    {"email": "chloe@example.org", "first_name": "Chloé", "role": "SRE", "language": "fr-CA"},
]  # fmt: skip


def test_a_german_candidate_gets_german_mail_footer_and_unsubscribe_page(
    system: Flask, smtp: SmtpCapture, browser
) -> None:
    client = system.test_client()
    editor = auth_headers(system, "editor")
    campaign = client.post("/api/v1/campaigns", json=FOLLOW_UP, headers=editor)
    assert campaign.status_code == 201, campaign.json
    client.post(f"/api/v1/campaigns/{campaign.json['id']}/activate", headers=editor)
    for person in PEOPLE:
        assert (
            ats_post(client, {"type": "candidate.rejected", "candidate": person}).status_code < 300
        )
    run_tick(system)
    drain(system)
    received = {mail.as_email()["To"]: mail.as_email() for mail in smtp.wait_for(3)}

    lena = received["lena@example.org"]
    assert lena["Subject"] == "Lena, danke von Acme"  # the step's German subject
    html = lena.get_body(preferencelist=("html",)).get_content()
    text = lena.get_body(preferencelist=("plain",)).get_content()
    assert '<html lang="de">' in html
    assert "ich wollte Ihnen nach unserer Entscheidung selbst schreiben" in text
    assert "Ihre klare Architektur-Skizze" in text
    assert "Sie erhalten diese E-Mail, weil Sie sich bei Acme beworben haben." in text
    assert "Abmelden:" in text and ">Abmelden</a>" in html and "E-Mail-Einstellungen" in html
    assert "Unsubscribe" not in text and "Thank you" not in text
    # As she sees it on her phone (tests/artifacts/mail-de-390.png, for people to look at).
    from tests.web.admin.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    phone.set_content(html)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(ARTIFACTS / "mail-de-390.png"), full_page=True)
    context.close()

    # Nobody wrote Brazilian Portuguese: João gets the team's English, subject override included.
    joao = received["joao@example.org"]
    assert joao["Subject"] == "João, thank you from Acme"
    assert (
        "You are receiving this because you applied to Acme."
        in joao.get_body(preferencelist=("plain",)).get_content()
    )
    # Canadian French takes the French starter, and its own French subject (the step has none).
    chloe = received["chloe@example.org"]
    assert chloe["Subject"] == "Merci pour le temps passé avec nous chez Acme"
    assert "Se désabonner" in chloe.get_body(preferencelist=("plain",)).get_content()

    # The unsubscribe link in Lena's mail opens a German page; its button unsubscribes her.
    [link] = [unescape(h) for h in re.findall(r'href="([^"]+)"', html) if "/u/" in h]
    path = link.replace(system.config["BASE_URL"], "")
    page = client.get(path)
    assert page.status_code == 200
    assert '<html lang="de">' in page.text
    assert "Von Acme abmelden?" in page.text and ">Abmelden</button>" in page.text
    done = client.post(path)
    assert "Sie sind abgemeldet" in done.text
    assert "bekommt keine E-Mails mehr vom Recruiting-Team von Acme" in done.text
    assert _candidate("lena@example.org").status == CandidateStatus.UNSUBSCRIBED
    # The one-click header points at the same page (mail providers POST it without a page).
    assert path in lena["List-Unsubscribe"]


# --- the preference page in the candidate's language, on a phone -------------------------------


def test_the_preference_page_in_french_on_a_390px_phone_and_a_new_language(
    app: Flask, clock, browser
) -> None:
    from nurture.core.tokens import Tokens
    from tests.web.admin.conftest import ARTIFACTS, LiveServer

    now = clock.now()
    chloe = Candidate(email="chloe@example.org", first_name="Chloé", language="fr-CA",
                      created_at=now, updated_at=now)  # fmt: skip
    db.session.add(chloe)
    db.session.commit()
    path = Tokens.from_config(app.config).preferences_url(chloe.id, None)
    path = path.replace(app.config["BASE_URL"], "")
    server = LiveServer(app)
    try:
        context = browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-FR")
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(server.url + path)
        assert page.locator("html").get_attribute("lang") == "fr"
        assert page.locator("h1").inner_text() == "Vos préférences e-mail"
        body = page.locator("main").inner_text()
        for words in ("Que souhaitez-vous recevoir ?", "Besoin d'une pause ?",
                      "Tout mettre en pause 3 mois", "Me désabonner de tout",
                      "Dans quelle langue souhaitez-vous que nous vous écrivions ?"):  # fmt: skip
            assert words in body, words
        assert "Unsubscribe" not in body and "Pause everything" not in body
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "preferences-fr-390.png"), full_page=True)

        # A pause, told in French with a French date.
        page.click("text=Tout mettre en pause 3 mois")
        page.wait_for_selector("text=En pause jusqu'au")
        assert "31 mai 2026" in page.locator("main").inner_text()

        # She would rather read Spanish: the page (and from now on her mail) switches.
        page.select_option("select[name=language]", "es")
        page.click("text=Enregistrer ma langue")
        page.wait_for_selector("text=a partir de ahora te escribiremos en español")
        assert page.locator("h1").inner_text() == "Tus preferencias de correo"
        page.screenshot(path=str(ARTIFACTS / "preferences-es-390.png"), full_page=True)
        context.close()
    finally:
        server.stop()
    assert _candidate("chloe@example.org").language == "es"


def test_a_language_posted_by_hand_that_is_none_is_refused_and_changes_nothing(
    app: Flask, client, clock
) -> None:
    from nurture.core.tokens import Tokens

    now = clock.now()
    db.session.add(Candidate(email="max@example.org", language="de", created_at=now,
                             updated_at=now))  # fmt: skip
    db.session.commit()
    max_id = _candidate("max@example.org").id
    path = Tokens.from_config(app.config).preferences_url(max_id, None)
    path = path.replace(app.config["BASE_URL"], "")
    page = client.get(path).get_data(as_text=True)
    token = re.search(
        r'action="[^"]*/language">\s*<input type="hidden" name="form_token" value="([^"]+)"', page
    ).group(1)
    answer = client.post(f"{path}/language", data={"form_token": token, "language": "<script>"})
    assert answer.status_code == 422
    assert "Wählen Sie eine der Sprachen aus der Liste." in answer.text
    assert "<script>" not in answer.text
    assert _candidate("max@example.org").language == "de"
    assert client.post(f"{path}/language", data={"language": "fr"}).status_code == 400
    assert _candidate("max@example.org").language == "de"
