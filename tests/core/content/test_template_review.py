"""What a template says before it reaches a candidate: lists read as text, Python never shows,
empty values and disagreeing parts are flagged, sample copy is caught, starters keep versions."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.core.content import templates as template_service
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import Candidate, EmailTemplate, TemplateVersion
from nurture.tasks.sending import template_library
from tests.core.content.test_templates import now, settings

SKILLS = """{% extends "layout.html" %}
{% block subject %}Hello {{ candidate.first_name }}{% endblock %}
{% block content %}
<p>Hi {{ candidate.first_name }},</p>
<p>Your skills in {{ candidate.skills }} stood out.</p>
<p>You reached the {{ candidate.stage }}.</p>
{% endblock %}
"""


def save(app: Flask, html: str, text: str = "", name: str = "note", **extra) -> EmailTemplate:
    saved = template_service.save_template(
        db.session,
        template_library(app),
        settings(app),
        {"name": name, "description": "", "subject": "", "html": html, "text": text},
        template=extra.pop("template", None),
        user_id=None,
        now=now(app),
        **extra,
    )
    db.session.commit()
    return saved


def candidate(**values) -> Candidate:
    base = {"email": "ana@example.org", "first_name": "Ana", "skills": ["python", "aws", "django"]}
    return Candidate(**{**base, **values})


def review_of(app: Flask, html: str, text: str = "", person: Candidate | None = None) -> list:
    library, mail_settings = template_library(app), settings(app)
    source = template_service.clean_source(html, text, "")
    compiled = template_service.compile_checked(library, mail_settings, source)
    person = person or candidate()
    mail = compiled.render(template_service.preview_context(mail_settings, None, person))
    return template_service.review(library, mail_settings, source, compiled, mail, person)


def test_a_list_reads_as_a_sentence_not_as_python(app: Flask) -> None:
    compiled = template_service.compile_checked(
        template_library(app), settings(app), template_service.clean_source(SKILLS, "", "")
    )
    context = template_service.preview_context(settings(app), None, candidate())
    mail = compiled.render(context)
    assert "Your skills in python, aws and django stood out." in mail.text
    assert "['" not in mail.html


@pytest.mark.parametrize(
    ("snippet", "field", "problem"),
    [
        ("<p>{{ candidate }}</p>", "html", "prints the whole candidate record"),
        ("<p>{{ candidate.skills|string }}</p>", "html", "shows “…"),
        ("<p>{{ candidate.rejection_reason|default(none, true)|string }}</p>", "html", "None"),
    ],
)
def test_python_in_the_mail_is_refused_on_save(app: Flask, snippet, field, problem) -> None:
    html = SKILLS.replace("<p>Hi {{ candidate.first_name }},</p>", snippet)
    with pytest.raises(ValidationError) as caught:
        save(app, html)
    db.session.rollback()
    assert problem in caught.value.fields[field]
    assert db.session.scalar(select(EmailTemplate.id)) is None


def test_an_optional_value_without_a_guard_is_flagged_with_its_line(app: Flask) -> None:
    notes = review_of(app, SKILLS, person=candidate(stage=""))
    (stage,) = [n for n in notes if "candidate.stage" in n]
    assert stage.startswith("HTML line 6: {{ candidate.stage }} is not inside {% if")
    assert "empty for Ana" in stage
    guarded = SKILLS.replace(
        "<p>You reached the {{ candidate.stage }}.</p>",
        "{% if candidate.stage %}<p>You reached the {{ candidate.stage }}.</p>{% endif %}",
    )
    assert not [n for n in review_of(app, guarded) if "candidate.stage" in n]


def test_editing_only_the_html_says_the_text_part_differs(app: Flask) -> None:
    library = template_library(app)
    html, text = library.file_sources("rejection_followup")
    assert not [n for n in review_of(app, html, text) if "plain-text" in n]
    edited = html.replace(
        "Decisions like this come down to one opening at a particular moment.",
        "Your skills in {{ candidate.skills }} stood out to the whole panel this week.",
    )
    (drift,) = [n for n in review_of(app, edited, text) if "plain-text" in n]
    assert "only in the HTML: “Your skills in python, aws and django stood out" in drift
    assert "only in the plain text: “Decisions like this come down to one opening" in drift
    # An empty text part is made from the HTML: nothing left to disagree.
    assert not [n for n in review_of(app, edited, "") if "plain-text" in n]


def test_the_newsletter_sample_copy_is_caught_until_it_is_rewritten(app: Flask) -> None:
    library = template_library(app)
    html, text = library.file_sources("newsletter")
    problem = template_service.sample_copy(library, html)
    assert "newsletter starter's sample copy" in problem
    assert any("cannot be sent yet" in n for n in review_of(app, html, text))
    ours = html.split("<h2 class=")[0] + (
        "<p>Our own news for this month: we opened an office in Lisbon, and the platform "
        "team is hiring three engineers.</p>{% endblock %}"
    )
    assert template_service.sample_copy(library, ours) == ""
    # One sample paragraph left as it was is enough to refuse it.
    tip = html.split("{# sample #}")[-1].split("{# end sample #}")[0]
    kept_one = ours.removesuffix("{% endblock %}") + tip + "{% endblock %}"
    assert "“When an interviewer asks" in template_service.sample_copy(library, kept_one)
    assert template_service.sample_copy(library, library.file_sources("job_alert")[0]) == ""


def test_a_starter_edited_in_place_keeps_versions_and_resets(app: Flask) -> None:
    library = template_library(app)
    original, text = library.file_sources("checkin_3_months")
    edited = original.replace("Hi {{ candidate.first_name }},", "Hello {{ candidate.first_name }},")
    save(app, edited, text, name="checkin_3_months", starter=True)
    assert "Hello" in template_service.named_html(library, "checkin_3_months")
    starters, team = template_service.list_templates(db.session, library)
    assert [s.name for s in starters if s.edited] == ["checkin_3_months"] and team == []
    again = edited.replace("Hello", "Dear")
    save(app, again, text, name="checkin_3_months", starter=True,
         template=template_service.edit_of(db.session, "checkin_3_months"))  # fmt: skip

    template_service.reset_starter(db.session, library, "checkin_3_months", None, now(app))
    db.session.commit()
    assert template_service.named_html(library, "checkin_3_months") == original
    history = template_service.versions(db.session, "checkin_3_months")
    assert [(v.number, v.note) for v, _, _ in history] == [
        (3, "reset to the starter"), (2, "saved"), (1, "saved"),
    ]  # fmt: skip
    first = db.session.scalar(select(TemplateVersion).where(TemplateVersion.number == 1))
    template_service.restore_version(db.session, library, settings(app), first.id, None, now(app))
    db.session.commit()
    assert "Hello" in template_service.named_html(library, "checkin_3_months")
    assert template_service.versions(db.session, "checkin_3_months")[0][0].note == (
        "restored version 1"
    )
