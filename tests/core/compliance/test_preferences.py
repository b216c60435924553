"""Preferences as data: topics in SQL agree with Python, form tokens, rating sums, snippets."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from nurture.core.compliance.preferences import (
    check_form_token,
    form_token,
    topic_allows,
    wants_topic,
)
from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.core.content.personalisation import build_context
from nurture.core.feedback.ratings import rating_summary
from nurture.core.tokens import BadToken, Tokens
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Event, EventKind, Message, Step, Topic
from nurture.tasks.sending import template_library
from tests.conftest import START, make_app
from tests.support.paths import ROOT

README = ROOT / "templates" / "emails" / "README.md"


@pytest.fixture
def any_db_app(database_url, clock):
    app = make_app(database_url, clock)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def test_topic_allows_in_sql_agrees_with_wants_topic(any_db_app) -> None:
    """On SQLite and PostgreSQL, the SQL expression and the Python rule pick the same people."""
    rng = random.Random(20260302)
    choices = [None, True, False]
    people = []
    for n in range(120):
        topics = {t: v for t in Topic if (v := rng.choice(choices)) is not None}
        people.append(
            Candidate(email=f"p{n}@example.org", topics=topics, created_at=START, updated_at=START)
        )
    db.session.add_all(people)
    db.session.commit()

    for topic in [*Topic, "system"]:
        in_sql = set(db.session.scalars(select(Candidate.id).where(topic_allows(topic))))
        in_python = {p.id for p in people if wants_topic(p, topic)}
        assert in_sql == in_python, topic
    assert 0 < len(in_sql) < len(people) or topic == "system"


def test_form_tokens_are_bound_to_the_page_the_action_and_a_day() -> None:
    tokens = Tokens("secret", "https://n.test")
    value = form_token(tokens, "page-a", "pause", START)

    check_form_token(tokens, "page-a", "pause", value, START + timedelta(hours=23))
    for page, action, when in (
        ("page-b", "pause", START),
        ("page-a", "delete", START),
        ("page-a", "pause", START + timedelta(days=1, minutes=1)),
        ("page-a", "pause", START - timedelta(minutes=5)),
    ):
        with pytest.raises(BadToken):
            check_form_token(tokens, page, action, value, when)
    with pytest.raises(BadToken):
        check_form_token(Tokens("other", "https://n.test"), "page-a", "pause", value, START)


def test_rating_summary_counts_people_and_leaves_machines_out(app, clock) -> None:
    now = clock.now()
    campaign = Campaign(name="c", created_at=now, updated_at=now, steps=[Step(position=0)])
    db.session.add(campaign)
    db.session.flush()
    for n, (value, machine) in enumerate([("5", False), ("4", False), ("4", False), ("1", True)]):
        person = Candidate(email=f"r{n}@example.org", created_at=now, updated_at=now)
        db.session.add(person)
        db.session.flush()
        message = Message(
            candidate_id=person.id,
            campaign_id=campaign.id,
            step_id=campaign.steps[0].id,
            queued_at=now,
        )
        db.session.add(message)
        db.session.flush()
        db.session.add(
            Event(
                message_id=message.id,
                candidate_id=person.id,
                kind=EventKind.RATING,
                value=value,
                machine=machine,
                created_at=now,
            )
        )
    db.session.commit()

    summary = rating_summary(db.session, campaign.id)

    assert summary.count == 3
    assert summary.average == 4.33
    assert summary.distribution == {1: 0, 2: 0, 3: 0, 4: 2, 5: 1}
    assert rating_summary(db.session, campaign.id + 1).average is None


def test_the_readme_rating_snippet_passes_the_template_checks(app) -> None:
    html_snippet, text_snippet = re.findall(
        r"```(?:html|jinja)\n(.*?)```", README.read_text().split("## Asking for a rating")[1], re.S
    )[:2]
    html = (
        '{% extends "layout.html" %}\n{% block preheader %}A quick question.{% endblock %}\n'
        "{% block content %}\n<p>Hi {{ candidate.first_name }},</p>\n"
        + html_snippet
        + "{% endblock %}\n"
    )
    text = (
        '{% extends "layout.txt" %}\n{% block content -%}\nHi {{ candidate.first_name }},\n\n'
        + text_snippet
        + "{%- endblock %}\n"
    )
    settings = MailSettings.from_config(app.config)
    source = template_service.clean_source(html, text, "How was your interview?")
    compiled = template_service.compile_checked(template_library(app), settings, source)
    tokens = Tokens.from_config(app.config)
    candidate = Candidate(email="a@example.org", first_name="Ana", skills=[])
    campaign = Campaign(name="c", sender_is_recruiter=True, sender_name="", sender_email="")
    mail = compiled.render(
        build_context(
            candidate,
            campaign,
            settings,
            unsubscribe_url="u",
            preferences_url="p",
            rating_urls=tokens.rating_urls(7),
        )
    )
    for value in range(1, 6):
        assert tokens.rating_url(7, value) in mail.html
        assert tokens.rating_url(7, value) in mail.text
