"""Templates: compiled and inlined once per version, rendered per recipient with fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.config import Config
from nurture.core.content.rendering import TemplateLibrary
from nurture.core.errors import ValidationError

STARTERS = [
    "checkin_3_months",
    "feedback_request",
    "job_alert",
    "newsletter",
    "reconsent",
    "reengage",
    "referral_ask",
    "referral_consent",
    "referral_thanks",
    "rejection_followup",
    "talent_network_invite",
]


def context(**candidate: str) -> dict:
    base = {
        "first_name": "Maya",
        "last_name": "Okafor",
        "full_name": "Maya Okafor",
        "email": "maya@example.org",
        "role": "Senior Backend Engineer",
        "stage": "final interview",
        "rejection_reason": "",
        "location": "London",
        "strengths": "your calm system-design walkthrough",
        "skills": ["python"],
    }
    base.update(candidate)
    return {
        "candidate": base,
        "recruiter": {
            "name": "Jordan Lee",
            "first_name": "Jordan",
            "email": "jordan@acme.example.com",
        },
        "company": {
            "name": "Acme",
            "postal_address": "1 Example St, Springfield",
            "careers_url": "https://acme.test/careers",
            "talent_network_url": "https://acme.test/network",
        },
        "campaign": {"name": "Silver"},
        "job": {
            "title": "Staff Engineer",
            "location": "Remote",
            "url": "https://acme.test/j/1",
            "summary": "Lead our platform team.",
        },
        "unsubscribe_url": "https://nurture.test/u/abc",
        "preferences_url": "https://nurture.test/p/abc",
        "referral": {
            "url": "https://nurture.test/f/abc",
            "opening": "Staff Engineer",
            "referrer_name": "Ana Lima",
            "referred_name": "Ben",
            "consent_url": "https://nurture.test/f/consent/abc",
        },
    }


@pytest.fixture
def library() -> TemplateLibrary:
    return TemplateLibrary(Config.TEMPLATES_DIR)


def test_starter_library_is_complete(library: TemplateLibrary) -> None:
    assert library.names() == STARTERS


@pytest.mark.parametrize("name", STARTERS)
def test_every_starter_renders_cleanly(library: TemplateLibrary, name: str) -> None:
    mail = library.get(name).render(context())
    for part in (mail.subject, mail.html, mail.text):
        assert "{{" not in part and "{%" not in part and "None" not in part
        assert "NURTUREJINJA" not in part
    assert mail.subject and "\n" not in mail.subject and len(mail.subject) < 70
    assert "https://nurture.test/u/abc" in mail.html and "https://nurture.test/u/abc" in mail.text
    assert "1 Example St, Springfield" in mail.html
    # premailer really inlined the layout's CSS onto the elements
    assert 'style="' in mail.html


def test_rejection_followup_names_role_and_strengths(library: TemplateLibrary) -> None:
    mail = library.get("rejection_followup").render(context())
    assert "Senior Backend Engineer" in mail.html and "Senior Backend Engineer" in mail.text
    assert "your calm system-design walkthrough" in mail.html
    assert "Hi Maya" in mail.html


def test_missing_variables_use_documented_fallbacks(library: TemplateLibrary) -> None:
    # The renderer's context builder applies these fallbacks; see personalisation.FALLBACKS.
    mail = library.get("rejection_followup").render(
        context(first_name="there", role="the role you applied for", strengths="", stage="")
    )
    assert "Hi there" in mail.html
    assert "the role you applied for" in mail.html
    assert "None" not in mail.html and "{{" not in mail.html


def test_a_template_is_inlined_once_per_version(library: TemplateLibrary) -> None:
    first = library.get("checkin_3_months")
    for _ in range(50):
        assert library.get("checkin_3_months") is first
        first.render(context())
    assert library.compilations == 1
    library.compile(
        '{% extends "layout.html" %}{% block subject %}Hi{% endblock %}'
        "{% block content %}<p>v1</p>{% endblock %}"
    )
    library.compile(
        '{% extends "layout.html" %}{% block subject %}Hi{% endblock %}'
        "{% block content %}<p>v2</p>{% endblock %}"
    )
    assert library.compilations == 3


def test_a_subject_override_is_its_own_version(library: TemplateLibrary) -> None:
    mail = library.get(
        "checkin_3_months", subject="Still thinking of you, {{ candidate.first_name }}"
    )
    assert mail.render(context()).subject == "Still thinking of you, Maya"


def test_syntax_error_is_refused_with_its_line(library: TemplateLibrary) -> None:
    source = (
        '{% extends "layout.html" %}\n{% block subject %}Hi{% endblock %}\n'
        "{% block content %}\n<p>fine</p>\n<p>{{ candidate.first_name }</p>\n{% endblock %}"
    )
    with pytest.raises(ValidationError) as caught:
        library.compile(source)
    assert "line" in caught.value.fields["html"]


def test_unknown_template_and_layout_are_named(library: TemplateLibrary) -> None:
    with pytest.raises(ValidationError) as caught:
        library.get("nope")
    assert "nope" in caught.value.fields["template"]
    with pytest.raises(ValidationError) as caught:
        library.compile('{% extends "../secret.html" %}{% block subject %}x{% endblock %}')
    assert "no layout" in caught.value.fields["html"]


def test_sandbox_refuses_unsafe_attribute_access(library: TemplateLibrary) -> None:
    from nurture.core.content.rendering import RenderError

    escape = library.compile(
        "<html><body><p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p></body></html>",
        subject="x",
    )
    with pytest.raises(RenderError, match="unsafe"):
        escape.render(context())
    peek = library.compile(
        "<html><body><p>{{ candidate.__class__ }}</p></body></html>", subject="x"
    )
    assert "class" not in peek.render(context()).html


def test_text_part_is_generated_when_there_is_no_twin(library: TemplateLibrary) -> None:
    compiled = library.compile(
        '{% extends "layout.html" %}{% block subject %}Hello{% endblock %}'
        "{% block content %}<p>Hello {{ candidate.first_name }}, see "
        '<a href="https://acme.test/roles">our open roles</a>.</p>{% endblock %}'
    )
    mail = compiled.render(context())
    assert "Hello Maya" in mail.text
    assert "https://acme.test/roles" in mail.text
    assert "<p>" not in mail.text


def test_templates_dir_exists() -> None:
    assert Path(Config.TEMPLATES_DIR, "layout.html").is_file()
