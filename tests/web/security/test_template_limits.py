"""An editor cannot take a process down through a template: rendering is bounded in output size,
numbers, loop turns and time, in the preview, on save, in a test send and in the worker; and a
template that names a variable nobody supplies is refused on save with its name and line."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import pytest
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import select

from nurture import tasks
from nurture.core.content.rendering import RenderError, TemplateLibrary
from nurture.core.content.sandbox import MAX_LOOP_ITERATIONS, MAX_OUTPUT
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Campaign, EmailTemplate, Message
from nurture.tasks.scheduling import run_tick
from tests.conftest import ats_post, running_app
from tests.web.security.conftest import as_user, csrf_of

# The red team's payloads, and what each must be refused for.
PAYLOADS = {
    "{{ 'x' * 10**8 }}": "at most 1,000,000",
    "{{ 'x' * 10**9 }}": "at most 1,000,000",
    "{{ 10**100000 }}": "1,000 digits",
    "{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}": (
        f"more than {MAX_LOOP_ITERATIONS:,} times"
    ),
    "{% for i in range(10**12) %}x{% endfor %}": "range() may give at most 10,000",
    "{% set s = 'ab' * 400000 %}{{ s ~ s ~ s }}": "joining with ~",
    "{{ 'x'|center(10**9) }}": "center filter",
    "{{ 'x'.rjust(10**9) }}": "str.rjust",
    "{{ '%0999999999d' % 1 }}": "format width",
    "{{ '{:>999999999}'.format(1) }}": "format width",
    "{{ ('x' * 2000)|replace('', 'y' * 2000) }}": "replace filter",
    "{% set a = 'x' * 400000 %}{% set b = [a, a, a, a, a] %}{{ [b, b, b, b, b] }}": "printing",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}": "calls itself",
}

BODY = '{{% extends "layout.html" %}}{{% block content %}}<p>{payload}</p>{{% endblock %}}'


@pytest.fixture
def library(app: Flask) -> TemplateLibrary:
    from nurture.tasks.sending import template_library

    return template_library(app)


@pytest.fixture
def peak() -> Iterator[callable]:
    """Measures the most memory Python held while the test ran (``peak()`` in MB)."""
    tracemalloc.start()
    yield lambda: tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_payload_is_refused_quickly_naming_the_limit(library, payload, peak) -> None:
    started = time.monotonic()
    compiled = library.compile(f"<p>{payload}</p>", subject="Hi")
    with pytest.raises(RenderError) as refused:
        compiled.render({"candidate": {"first_name": "Ana"}})
    problem = refused.value.fields["html"]
    # On a machine busy enough, a loop meets the 2 s limit before its 100,000th turn.
    assert PAYLOADS[payload] in problem or "longer than 2 seconds" in problem, problem
    assert time.monotonic() - started < 5
    assert peak() < 30, f"{payload} made Python hold {peak():.0f} MB"


def test_a_render_over_its_time_is_stopped(library) -> None:
    from nurture.core.content import sandbox

    compiled = library.compile(
        "{% for i in range(10000) %}{% for j in range(9) %}{{ i|string|center(100) }}"
        "{% endfor %}{% endfor %}",
        subject="Hi",
    )
    with sandbox.budget(seconds=0.01), pytest.raises(RenderError, match="longer than 0.01 s"):
        compiled.render({})


def test_templates_that_stay_inside_the_limits_render_as_before(library) -> None:
    compiled = library.compile(
        "<p>{% for s in candidate.skills %}{{ s|upper }}{{ ', ' if not loop.last }}{% endfor %}"
        " {{ 2**10 }} {{ 'ab' * 3 }} {{ '%05d' % 42 }} {{ '{:>4}'.format(7) }}"
        " {{ candidate.skills|join('/') }} {{ range(3)|list }}</p>",
        subject="For {{ candidate.first_name }}",
    )
    mail = compiled.render({"candidate": {"first_name": "Ana", "skills": ["go", "sql"]}})
    # A list prints as a sentence says it (never a Python repr).
    assert "GO, SQL 1024 ababab 00042    7 go/sql 0, 1 and 2" in mail.html
    assert mail.subject == "For Ana"


def test_a_huge_template_source_is_refused_before_it_is_compiled(library) -> None:
    from nurture.core.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        library.compile("<p>" + "x" * 600_000 + "</p>", subject="Hi")
    assert "a template part may have 500,000" in refused.value.fields["html"]
    with pytest.raises(ValidationError) as refused:
        library.check("{{ " + "9" * 5000 + " }}", "html")
    assert "html" in refused.value.fields


# --- the admin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["{{ 'x' * 10**8 }}", "{{ 10**100000 }}"])
def test_the_admin_preview_answers_422_naming_the_limit(app: Flask, people, payload, peak) -> None:
    client = as_user(app, "editor")
    token = csrf_of(client.get("/admin/templates/new").text)
    started = time.monotonic()
    answer = client.post(
        "/admin/templates/preview",
        data={"csrf_token": token, "html": BODY.format(payload=payload), "subject": "Hi"},
    )
    assert answer.status_code == 422
    assert PAYLOADS[payload] in answer.json["errors"]["html"]
    assert time.monotonic() - started < 5
    assert peak() < 60


def test_nested_loops_in_the_editor_are_refused_on_save_and_in_a_test_send(
    app: Flask, people, smtp: SmtpCapture, peak
) -> None:
    app.config["SMTP_URL"] = smtp.url
    client = as_user(app, "editor")
    token = csrf_of(client.get("/admin/templates/new").text)
    loops = "{% for i in range(10000) %}{% for j in range(10000) %}.{% endfor %}{% endfor %}"
    form = {
        "csrf_token": token,
        "name": "loops",
        "subject": "Hi",
        "html": BODY.format(payload=loops),
    }
    started = time.monotonic()
    saved = client.post("/admin/templates/new", data={**form, "action": "save"})
    assert saved.status_code == 422
    assert f"more than {MAX_LOOP_ITERATIONS:,} times" in saved.text or "2 seconds" in saved.text
    assert db.session.scalar(select(EmailTemplate)) is None
    tested = client.post(
        "/admin/templates/new", data={**form, "action": "test", "to": "me@example.com"}
    )
    assert tested.status_code == 422 and "the limit" in tested.text
    assert smtp.messages == []
    assert time.monotonic() - started < 5
    assert peak() < 60


def test_an_unknown_variable_is_refused_on_save_with_its_name_and_line(app: Flask, people) -> None:
    client = as_user(app, "editor")
    token = csrf_of(client.get("/admin/templates/new").text)
    answer = client.post(
        "/admin/templates/new",
        data={
            "csrf_token": token,
            "action": "save",
            "name": "thanks",
            "subject": "Thank you, {{ first_name }}",
            "html": BODY.format(payload="Hi {{ candidate.first_name }},\n{{ candidate.nickname }}"),
        },
    )
    assert answer.status_code == 422
    text = answer.text.replace("&#34;", '"')
    assert "line 1: unknown variable first_name (did you mean candidate.first_name" in text
    assert "line 2: unknown variable candidate.nickname" in text
    assert "candidate.first_name, candidate.last_name" in text  # the known ones are listed
    assert db.session.scalar(select(EmailTemplate)) is None


def test_the_campaign_builder_refuses_a_step_subject_naming_an_unknown_variable(
    app: Flask, people
) -> None:
    client = as_user(app, "editor")
    token = csrf_of(client.get("/admin/campaigns/new").text)
    form = {
        "csrf_token": token,
        "name": "Thanks",
        "entry_type": "tag",
        "entry_tag": "silver",
        "sender_mode": "recruiter",
        "steps-0-id": "",
        "steps-0-delay_amount": "0",
        "steps-0-delay_unit": "days",
        "steps-0-template": "rejection_followup",
        "steps-0-subject": "Thank you, {{ first_name }}",
        "action": "save",
    }
    answer = client.post("/admin/campaigns/new", data=form)
    assert answer.status_code == 422
    text = answer.text.replace("&#34;", '"')
    assert "unknown variable first_name (did you mean candidate.first_name" in text
    assert db.session.scalar(select(Campaign)) is None
    form["steps-0-subject"] = "Thank you, {{ candidate.first_name }}"
    assert client.post("/admin/campaigns/new", data=form).status_code == 302


# --- the API -----------------------------------------------------------------------------------


def drip(**step) -> dict:
    return {"name": "Drip", "entry": {"ats_event": "candidate.rejected"}, "steps": [step]}


def test_the_api_refuses_a_step_subject_with_an_unknown_variable(app: Flask, people) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {people['editor']}"}
    answer = client.post(
        "/api/v1/campaigns",
        json=drip(template="rejection_followup", subject="Thank you, {{ first_name }}"),
        headers=headers,
    )
    assert answer.status_code == 422
    problem = answer.json["error"]["fields"]["steps[0].subject"]
    assert problem.startswith("line 1: unknown variable first_name")
    assert "candidate.first_name" in problem and "known: candidate, recruiter" in problem
    ok = client.post(
        "/api/v1/campaigns",
        json=drip(template="rejection_followup", subject="Thank you, {{ candidate.first_name }}"),
        headers=headers,
    )
    assert ok.status_code == 201


@pytest.mark.parametrize("payload", ["{{ 'x' * 10**9 }}", "{{ 10**100000 }}"])
def test_the_api_refuses_a_step_over_a_limit_with_422(app: Flask, people, payload, peak) -> None:
    started = time.monotonic()
    answer = app.test_client().post(
        "/api/v1/campaigns",
        json=drip(html=BODY.format(payload=payload), subject="Hi"),
        headers={"Authorization": f"Bearer {people['editor']}"},
    )
    assert answer.status_code == 422
    assert PAYLOADS[payload] in answer.json["error"]["fields"]["steps[0].html"]
    assert time.monotonic() - started < 5
    assert peak() < 60


# --- the worker --------------------------------------------------------------------------------


def test_a_mail_over_a_limit_for_one_candidate_fails_with_the_reason_and_the_rest_go(
    sqlite_url, clock, smtp: SmtpCapture, redis_url
) -> None:
    """The sample candidate renders fine (so the step saves); a real one with long strengths
    makes the mail too big: that message fails with the limit named, the worker lives on."""
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        from tests.conftest import auth_headers

        client = app.test_client()
        headers = auth_headers(app, "editor")
        html = BODY.format(payload="{{ candidate.strengths * 300 }}")
        created = client.post(
            "/api/v1/campaigns", json=drip(html=html, subject="Hi"), headers=headers
        )
        assert created.status_code == 201, created.json
        client.post(f"/api/v1/campaigns/{created.json['id']}/activate", headers=headers)
        for email, strengths in (("long@example.org", "y" * 5000), ("short@example.org", "ok")):
            person = {"email": email, "first_name": "A", "strengths": strengths}
            assert (
                ats_post(client, {"type": "candidate.rejected", "candidate": person}).status_code
                == 200
            )
        run_tick(app)
        worker = SimpleWorker([tasks.get_queue(app)], connection=tasks.get_redis(app))
        assert worker.work(burst=True)
        db.session.remove()
        outcome = dict(db.session.execute(select(Message.to_address, Message.state)).all())
        failed = db.session.scalar(select(Message).where(Message.state == "failed"))
        assert failed is not None, outcome
        assert failed.error.startswith("template: the html cannot be rendered: ")
        assert f"at most {MAX_OUTPUT:,}" in failed.error
        assert len(smtp.messages) == 1 and "short@example.org" in smtp.messages[0].rcpt_tos
