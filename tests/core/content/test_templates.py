"""Admin-edited templates: checks on save, resolving by name when sending, previews, test sends."""

from __future__ import annotations

import pytest
from flask import Flask, current_app
from sqlalchemy import func, select

from nurture.core.compliance.suppressions import suppress
from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.core.content.personalisation import build_context
from nurture.core.content.rendering import TemplateLibrary
from nurture.core.delivery import proofs
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.delivery.smtp import SmtpSettings, SmtpTransport
from nurture.core.errors import Conflict, ValidationError
from nurture.core.tokens import Tokens
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Campaign, Candidate, EmailTemplate, Event, Message
from nurture.tasks.sending import send_messages, template_library
from tests.conftest import ats_post, auth_headers, running_app

GOOD = """{% extends "layout.html" %}
{% block subject %}A note for {{ candidate.first_name }}{% endblock %}
{% block preheader %}Preview text.{% endblock %}
{% block content %}
<p>Hi {{ candidate.first_name }},</p>
<p>Version one.</p>
{% endblock %}
"""


def now(app: Flask):
    return app.extensions["nurture.clock"].now()


def settings(app: Flask) -> MailSettings:
    return MailSettings.from_config(app.config)


def save(app: Flask, template: EmailTemplate | None = None, **data: str) -> EmailTemplate:
    fields = {"name": "silver-note", "description": "", "subject": "", "html": GOOD, "text": ""}
    fields.update(data)
    saved = template_service.save_template(
        db.session,
        template_library(app),
        settings(app),
        fields,
        template=template,
        user_id=None,
        now=now(app),
    )
    db.session.commit()
    return saved


def count() -> int:
    return db.session.scalar(select(func.count()).select_from(EmailTemplate))


def refused(app: Flask, **data: str) -> dict[str, str]:
    before = count()
    with pytest.raises(ValidationError) as caught:
        save(app, **data)
    db.session.rollback()
    assert count() == before  # nothing half-saved
    return caught.value.fields


# --- the documented variables -----------------------------------------------------------------


def test_documented_variables_are_exactly_what_build_context_supplies(app: Flask) -> None:
    candidate = Candidate(email="a@example.org", first_name="A", skills=[])
    campaign = Campaign(name="c", sender_is_recruiter=True, sender_name="", sender_email="")
    context = build_context(
        candidate, campaign, settings(app), unsubscribe_url="u", preferences_url="p"
    )
    assert set(template_service.flatten_keys(context)) == set(template_service.VARIABLES)
    # and the job dict of a job alert has the same keys as the placeholder one
    job = {"title": "t", "location": "l", "url": "u", "summary": "s"}
    alert = build_context(
        candidate, campaign, settings(app), unsubscribe_url="u", preferences_url="p", job=job
    )
    assert set(template_service.flatten_keys(alert)) == set(template_service.VARIABLES)


def test_every_starter_passes_the_checks_a_save_makes(app: Flask) -> None:
    library = template_library(app)
    for name in library.names():
        html, text = library.file_sources(name)
        source = template_service.clean_source(html, text, "")
        template_service.compile_checked(library, settings(app), source)


# --- validation on save -----------------------------------------------------------------------


def test_an_unknown_variable_is_refused_with_its_line_and_the_known_ones(app: Flask) -> None:
    html = GOOD.replace("<p>Version one.</p>", "<p>Love the {{ candidate.favourite_color }}.</p>")
    problem = refused(app, html=html)["html"]
    assert problem.startswith("line 6: unknown variable candidate.favourite_color; known: ")
    assert "candidate.first_name" in problem and "candidate.role" in problem


def test_unknown_variables_are_found_in_every_part_and_form(app: Flask) -> None:
    html = GOOD.replace(
        "<p>Version one.</p>",
        "{% for skill in candidate.skills %}<p>{{ skill }} {{ loop.index }}</p>{% endfor %}\n"
        "{% set who = candidate.first_name %}<p>{{ who|upper }} {{ candidate['frist_name'] }}</p>\n"
        "<p>{{ candidate.skills[0].upper() }} {{ candidate.role|title }}</p>\n"
        "<p>{{ (jobs|first).title }}</p>",
    )
    errors = refused(app, html=html, subject="Hi {{ recruiter.phone }}", text="{{ nope }}")
    assert (
        "line 7: unknown variable candidate.frist_name (did you mean candidate.first_name?)"
        in (errors["html"])
    )
    assert "line 9: unknown variable jobs" in errors["html"]
    assert "variable skill" not in errors["html"] and "variable who" not in errors["html"]
    assert errors["subject"].startswith("line 1: unknown variable recruiter.phone; known: ")
    assert errors["text"].startswith("line 1: unknown variable nope; known: candidate")


def test_a_syntax_error_names_the_line_written_in_the_editor(app: Flask) -> None:
    html = GOOD.replace("<p>Version one.</p>", "<p>\n\n{{ candidate.first_name }</p>")
    assert refused(app, html=html)["html"].startswith("line 8: ")
    # An unknown filter is found too, on the author's line, not the layout's.
    html = GOOD.replace("<p>Version one.</p>", "<p>{{ candidate.role|shout }}</p>")
    assert refused(app, html=html)["html"] == "line 6: No filter named 'shout'."
    # Browsers send CRLF line ends; the lines are still the author's.
    crlf = GOOD.replace("\n", "\r\n").replace("<p>Version one.</p>", "<p>{% if %}</p>")
    assert refused(app, html=crlf)["html"].startswith("line 6: ")
    assert refused(app, text="one\ntwo {% endif %}")["text"].startswith("line 2: ")


def test_a_subject_is_required_in_the_field_or_the_html(app: Flask) -> None:
    html = GOOD.replace(
        "{% block subject %}A note for {{ candidate.first_name }}{% endblock %}\n", ""
    )
    assert "subject" in refused(app, html=html)["subject"]
    saved = save(app, html=html, subject="  Hello\n{{ candidate.first_name }}  ")
    assert saved.subject == "Hello {{ candidate.first_name }}"


def test_a_mail_without_an_unsubscribe_link_is_refused(app: Flask) -> None:
    bare = "<html><body><p>Hi {{ candidate.first_name }}</p></body></html>"
    assert "unsubscribe" in refused(app, html=bare, subject="Hi")["html"]
    own_link = bare.replace("</p>", ' <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
    assert save(app, html=own_link, subject="Hi").id
    assert "unsubscribe" in refused(app, name="other", text="Hi {{ candidate.first_name }}")["text"]


def test_name_rules(app: Flask) -> None:
    assert "letters, digits" in refused(app, name="silver note")["name"]
    assert "letters, digits" in refused(app, name="../secret")["name"]
    assert "give the template a name" in refused(app, name="")["name"]
    assert "starter" in refused(app, name="rejection_followup")["name"]
    assert "starter" in refused(app, name="Newsletter")["name"]
    assert "starter" in refused(app, name="layout")["name"]
    save(app, name="silver-note_2")
    with pytest.raises(ValidationError) as caught:
        save(app, name="Silver-Note_2")
    assert "already" in caught.value.fields["name"]


def test_all_errors_are_reported_at_once_and_nothing_is_written(app: Flask) -> None:
    errors = refused(
        app, name="bad name", description="x" * 400, html=GOOD.replace("}}", "}", 1), text="{{ x }}"
    )
    assert set(errors) == {"name", "description", "html", "text"}


def test_runtime_errors_are_caught_on_save(app: Flask) -> None:
    html = GOOD.replace("<p>Version one.</p>", "<p>{{ candidate.first_name / 2 }}</p>")
    assert refused(app, html=html)["html"].startswith("cannot be rendered: ")


def test_a_template_used_by_a_campaign_keeps_its_name_and_cannot_be_deleted(app: Flask) -> None:
    template = save(app)
    client = app.test_client()
    campaign = {"name": "Notes", "steps": [{"delay": "PT0S", "template": "silver-note"}]}
    answer = client.post("/api/v1/campaigns", json=campaign, headers=auth_headers(app, "editor"))
    assert answer.status_code == 201, answer.json
    with pytest.raises(ValidationError) as caught:
        save(app, template, name="renamed")
    assert "Notes" in caught.value.fields["name"]
    db.session.rollback()
    with pytest.raises(Conflict):
        template_service.delete_template(db.session, template)


def test_duplicating_a_starter_makes_an_editable_copy(app: Flask) -> None:
    library = template_library(app)
    first = template_service.duplicate_starter(
        db.session, library, settings(app), "newsletter", user_id=None, now=now(app)
    )
    second = template_service.duplicate_starter(
        db.session, library, settings(app), "newsletter", user_id=None, now=now(app)
    )
    assert (first.name, second.name) == ("newsletter_copy", "newsletter_copy_2")
    assert first.html == library.file_sources("newsletter")[0]
    starters, team = template_service.list_templates(db.session, library)
    assert [t.name for t in team] == ["newsletter_copy", "newsletter_copy_2"]
    assert "newsletter" in [t.name for t in starters] and all(t.kind == "starter" for t in starters)
    assert next(t for t in starters if t.name == "job_alert").description.startswith('"A role')


# --- resolving by name ------------------------------------------------------------------------


def test_campaign_steps_may_name_a_team_template(app: Flask) -> None:
    save(app)
    client = app.test_client()
    headers = auth_headers(app, "editor")
    body = {"name": "Notes", "steps": [{"delay": "PT0S", "template": "silver-note"}]}
    assert client.post("/api/v1/campaigns", json=body, headers=headers).status_code == 201
    body["steps"][0]["template"] = "no-such-template"
    answer = client.post("/api/v1/campaigns", json=body, headers=headers)
    assert answer.status_code == 422
    assert "no-such-template" in answer.json["error"]["fields"]["steps[0].template"]


def test_the_library_prefers_the_team_template_and_compiles_each_version_once(tmp_path) -> None:
    from nurture.config import Config

    rows = {"mine": ('{% extends "layout.html" %}{% block content %}v1{% endblock %}', None, "S")}
    library = TemplateLibrary(Config.TEMPLATES_DIR, sources=rows.get)
    first = library.get("mine")
    assert library.get("mine") is first and library.compilations == 1
    assert library.get("mine", subject="Other").key != first.key  # a step's subject wins
    rows["mine"] = (rows["mine"][0].replace("v1", "v2"), None, "S")
    assert library.get("mine").key != first.key
    assert library.compilations == 3
    assert library.get("checkin_3_months")  # files still resolve


def test_the_compiled_cache_keeps_the_recently_used_versions(monkeypatch) -> None:
    from nurture.config import Config
    from nurture.core.content import rendering

    monkeypatch.setattr(rendering, "CACHE_SIZE", 2)
    library = TemplateLibrary(Config.TEMPLATES_DIR)
    checkin = library.get("checkin_3_months")
    library.get("newsletter")
    assert library.get("checkin_3_months") is checkin  # used again: now the most recent
    library.get("job_alert")  # evicts newsletter, the least recently used
    assert library.get("checkin_3_months") is checkin
    assert library.compilations == 3
    library.get("newsletter")
    assert library.compilations == 4


@pytest.fixture
def mail_app(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def test_an_edited_template_changes_the_next_mail(mail_app: Flask, smtp: SmtpCapture) -> None:
    template_id = save(mail_app).id
    client = mail_app.test_client()
    headers = auth_headers(mail_app, "editor")
    drip = {
        "name": "Notes",
        "entry": {"ats_event": "candidate.rejected"},
        "steps": [{"delay": "PT0S", "template": "silver-note"}],
    }
    campaign = client.post("/api/v1/campaigns", json=drip, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    library = template_library(mail_app)

    def mail_to(n: int) -> str:
        person = {"email": f"p{n}@example.org", "first_name": f"Pat{n}"}
        ats_post(client, {"type": "candidate.rejected", "candidate": person})
        create_due_messages(db.session, now(mail_app))
        ids = list(db.session.scalars(select(Message.id).where(Message.state == "queued")))
        assert send_messages(ids) == {"sent": 1}
        return smtp.messages[-1].as_email().get_body(("html",)).get_content()

    first = mail_to(1)
    assert "Version one." in first and "Hi Pat1" in first
    compiled = library.compilations
    assert "Version one." in mail_to(2)
    assert library.compilations == compiled  # the same version is not inlined again

    template = db.session.get(EmailTemplate, template_id)
    save(mail_app, template, html=GOOD.replace("Version one.", "Version two."))
    after_save = library.compilations  # the save compiled (and cached) the new version
    third = mail_to(3)
    assert "Version two." in third and "Version one." not in third
    assert "Version two." in mail_to(4)
    assert library.compilations == after_save  # premailer ran once for version two
    assert smtp.messages[-1].as_email()["Subject"] == "A note for Pat4"


# --- previews and test sends ------------------------------------------------------------------


def add_candidate(email: str, first_name: str, status: str = "active") -> Candidate:
    stamp = now(current_app)
    candidate = Candidate(
        email=email, first_name=first_name, status=status, created_at=stamp, updated_at=stamp
    )
    db.session.add(candidate)
    db.session.commit()
    return candidate


def test_preview_candidate_is_chosen_by_address_else_the_first_active_else_a_sample(
    app: Flask,
) -> None:
    assert template_service.find_candidate(db.session, "") is None
    sample = template_service.sample_candidate()
    assert sample.id is None and sample.first_name
    add_candidate("gone@example.org", "Gone", status="unsubscribed")
    add_candidate("ines@example.org", "Inès")
    add_candidate("zoe@example.org", "Zoë")
    assert template_service.find_candidate(db.session, "").first_name == "Inès"
    assert template_service.find_candidate(db.session, "ZOE@example.org").first_name == "Zoë"
    assert template_service.find_candidate(db.session, "zo").first_name == "Zoë"
    assert template_service.find_candidate(db.session, "%") is None  # LIKE wildcards are literal
    assert template_service.find_candidate(db.session, "nobody@") is None
    assert template_service.search_candidates(db.session, "zo") == [("zoe@example.org", "Zoë")]
    assert template_service.search_candidates(db.session, "%") == []


def test_a_preview_uses_the_real_context_and_no_tracking(app: Flask) -> None:
    candidate = add_candidate("ines@example.org", "Inès")
    compiled = template_service.compile_checked(
        template_library(app), settings(app), template_service.clean_source(GOOD, "", "")
    )
    tokens = Tokens(app.config["SECRET_KEY"], settings(app).base_url)
    mail = template_service.render_preview(compiled, settings(app), tokens, candidate)
    assert mail.subject == "A note for Inès"
    assert tokens.unsubscribe_url(candidate.id, None) in mail.html
    assert "/o/" not in mail.html and "/c/" not in mail.html  # no pixel, no click tracking
    assert "Hi Inès" in mail.text


def transport(smtp: SmtpCapture) -> SmtpTransport:
    return SmtpTransport(SmtpSettings.from_url(smtp.url))


def test_a_test_send_mails_once_and_records_nothing(app: Flask, smtp: SmtpCapture) -> None:
    candidate = add_candidate("ines@example.org", "Inès")
    compiled = template_library(app).get("rejection_followup")
    proofs.send_test(
        db.session,
        transport(smtp),
        settings(app),
        compiled,
        candidate,
        "Me@Example.com",
        now(app),
    )
    (sent,) = smtp.messages
    message = sent.as_email()
    assert sent.rcpt_tos == ["me@example.com"]
    assert message["Subject"].startswith("[Test] ")
    assert "Hi Inès" in message.get_body(("html",)).get_content()
    assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    assert db.session.scalar(select(func.count()).select_from(Event)) == 0


def test_a_test_send_never_mails_a_suppressed_or_invalid_address(
    app: Flask, smtp: SmtpCapture
) -> None:
    suppress(db.session, "gone@example.org", "unsubscribed", now(app))
    db.session.commit()
    compiled = template_library(app).get("rejection_followup")
    sample = template_service.sample_candidate()
    for address, expected in (("Gone@Example.org", "suppression list"), ("not-an-address", "")):
        with pytest.raises(ValidationError) as caught:
            proofs.send_test(
                db.session, transport(smtp), settings(app), compiled, sample, address, now(app)
            )
        assert expected in caught.value.fields["to"]
    assert smtp.messages == []


def test_an_smtp_refusal_is_reported(app: Flask, smtp: SmtpCapture) -> None:
    smtp.fail_next("554 5.7.1 relay denied")
    compiled = template_library(app).get("rejection_followup")
    with pytest.raises(proofs.TestSendFailed) as caught:
        proofs.send_test(
            db.session,
            transport(smtp),
            settings(app),
            compiled,
            template_service.sample_candidate(),
            "me@example.com",
            now(app),
        )
    assert "554" in str(caught.value)
