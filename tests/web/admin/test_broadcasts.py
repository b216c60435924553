"""Broadcasts in the admin: write one, see whom it reaches, confirm, watch it go out once each."""

from __future__ import annotations

import html as entities
import re
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from nurture.core.audience.segments import save_segment
from nurture.core.campaigns.broadcasts import run_broadcasts
from nurture.core.campaigns.service import campaign_dict
from nurture.core.content.mime import MailSettings
from nurture.core.content.templates import save_template
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Message
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import template_library
from nurture.workflows.candidates import save_candidate
from tests.web.admin.conftest import login, screenshot, work_off
from tests.web.admin.test_campaigns import csrf_of, signed_in

TAG = "talent-network"


def count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def shoot(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, name)


def our_newsletter(app: Flask) -> None:
    """The newsletter starter as a team sends it: its sample sections rewritten."""
    library = template_library(app)
    html, text = library.file_sources("newsletter")
    ours = re.sub(
        r"{# sample #}.*?{# end sample #}",
        "<p>Our own news this month: the platform team moved to Lisbon and is hiring.</p>",
        html,
        flags=re.S,
    )
    save_template(
        db.session,
        library,
        MailSettings.from_config(app.config),
        {"name": "newsletter", "html": ours, "text": ""},
        template=None,
        user_id=None,
        now=app.extensions["nurture.clock"].now(),
        starter=True,
    )
    db.session.commit()


def seed(app: Flask, newsletter: bool = True) -> None:
    """Five in the talent network (one turned newsletters off), one outside it; the team's
    own newsletter (the starter's sample copy is refused)."""
    if newsletter:
        our_newsletter(app)
    now = app.extensions["nurture.clock"].now()
    for name, zone in (
        ("ana", "Europe/Berlin"),
        ("bo", "America/New_York"),
        ("chen", "Asia/Tokyo"),
        ("dee", ""),
        ("eli", "Europe/Lisbon"),
    ):
        save_candidate(
            db.session,
            {
                "email": f"{name}@example.org",
                "first_name": name.title(),
                "timezone": zone,
                "tags": [TAG],
            },
            now,
        )
    save_candidate(db.session, {"email": "fay@example.org", "tags": ["backend"]}, now)
    db.session.commit()
    eli = db.session.scalar(select(Candidate).where(Candidate.email == "eli@example.org"))
    eli.topics = {"newsletter": False}
    db.session.commit()


def send(app: Flask) -> int:
    """The scheduler's pass and a worker until the queue is empty; returns messages created."""
    with app.app_context():
        created = run_tick(app).created
    work_off(app)
    return created


def field_error(page, selector: str) -> str:
    return page.locator(f".field:has({selector}) .error").inner_text()


# --- the journey in a real browser ---------------------------------------------------------------


def test_write_check_confirm_and_send_a_broadcast_once_each(
    page, live_app, live_server, smtp, browser
) -> None:
    seed(live_app)
    login(page, "editor")
    page.click("nav >> text=Broadcasts")
    page.wait_for_url("**/admin/broadcasts")
    assert "No broadcasts yet" in page.locator(".empty").inner_text()
    page.click("text=+ New broadcast")
    page.wait_for_url("**/admin/broadcasts/new")
    assert page.locator("#template").input_value() == "newsletter"
    assert page.locator("#topic").input_value() == "newsletter"

    # No name, and "later" without a time: both are named at their fields.
    page.check("#when-1")
    page.fill("#audience_tag", TAG)
    page.click("text=Check the audience…")
    assert field_error(page, "#name") == "A campaign needs a name"
    assert field_error(page, "#scheduled_at") == "Choose a date and time, or send it now"
    assert page.locator("#audience_tag").input_value() == TAG  # what was typed stays
    assert count(Campaign) == 0

    # A time already past and a tag nobody has: named too, and still nothing is created.
    page.fill("#name", "March newsletter")
    page.fill("#subject", "News from Acme, {{ candidate.first_name }}")
    page.fill("#audience_tag", "nobody-has-this")
    page.fill("#scheduled_at", "2026-03-01T10:00")
    page.click("text=Check the audience…")
    assert field_error(page, "#scheduled_at").startswith("That time has passed")
    assert field_error(page, "#audience_tag").startswith("Nobody in this audience can receive it")
    assert page.locator(".field.has-error").count() == 2
    assert count(Campaign) == 0
    shoot(page, "broadcasts-new-errors")

    # Now, to the talent network: the confirmation counts who would get it, before anything.
    page.fill("#audience_tag", TAG)
    page.check("#when-0")
    page.click("text=Check the audience…")
    assert page.locator("[data-impact=audience]").inner_text() == "4"  # Eli turned it off
    assert count(Campaign) == 0
    shoot(page, "broadcasts-confirm")
    page.click("text=Back to edit")
    assert page.locator("#name").input_value() == "March newsletter"
    assert page.locator("#audience_tag").input_value() == TAG
    page.click("text=Check the audience…")
    page.click("button:has-text('Send to 4 candidates')")
    page.wait_for_url(re.compile(r".*/admin/broadcasts/\d+$"))
    assert (
        "is going out now: 4 candidates are in its audience"
        in page.locator(".flash.success").inner_text()
    )
    campaign = db.session.scalar(select(Campaign))
    assert (campaign.kind, campaign.status, campaign.topic) == ("broadcast", "active", "newsletter")

    # The scheduler's pass and a worker send it; a second pass sends nothing more.
    assert send(live_app) == 4
    assert send(live_app) == 0
    recipients = sorted(m.rcpt_tos[0] for m in smtp.messages)
    assert recipients == [
        "ana@example.org",
        "bo@example.org",
        "chen@example.org",
        "dee@example.org",
    ]
    assert {
        m.as_email()["Subject"] for m in smtp.messages if m.rcpt_tos == ["ana@example.org"]
    } == {"News from Acme, Ana"}

    page.reload()
    assert page.locator("h1 [data-phase]").inner_text() == "sent"
    assert page.locator("[data-live=sent] .n").inner_text() == "4"
    assert page.locator("[data-live=queued] .n").inner_text() == "0"
    assert page.locator("[data-stat=sent]").inner_text() == "4"
    assert page.locator(".progress-head [data-field=percent]").inner_text() == "100"
    shoot(page, "broadcasts-detail")

    page.click("nav >> text=Broadcasts")
    row = page.locator("table.broadcast-list tbody tr")
    assert row.count() == 1
    assert "March newsletter" in row.inner_text() and TAG in row.inner_text()
    assert row.locator("[data-progress]").inner_text() == "4 sent"
    shoot(page, "broadcasts-list")

    # A viewer reads the list and the progress, has no buttons, and cannot post.
    viewer = browser.new_context(
        viewport={"width": 390, "height": 900}, base_url=live_server.url
    ).new_page()
    login(viewer, "viewer")
    viewer.goto("/admin/broadcasts")
    assert viewer.locator("text=New broadcast").count() == 0
    viewer.goto(f"/admin/broadcasts/{campaign.id}")
    assert viewer.locator("[data-live=sent] .n").inner_text() == "4"
    assert viewer.locator("text=Archive…").count() == 0
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    for action in ("check", "confirm"):
        answer = viewer.request.post(
            live_server.url + "/admin/broadcasts/new",
            form={
                "csrf_token": token,
                "name": "Mine",
                "template": "newsletter",
                "topic": "newsletter",
                "audience_kind": "tag",
                "audience_tag": TAG,
                "when": "now",
                "action": action,
            },
        )
        assert answer.status == 403
    assert viewer.request.get(live_server.url + "/admin/broadcasts/new").status == 403
    viewer.context.close()
    assert count(Campaign) == 1 and count(Message) == 4


# --- over plain HTTP, with the injected clock -----------------------------------------------------


def new_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "name": "Spring update",
        "template": "newsletter",
        "subject": "",
        "topic": "newsletter",
        "audience_kind": "tag",
        "audience_tag": TAG,
        "audience_segment": "",
        "when": "now",
        "scheduled_at": "",
        "action": "confirm",
    }
    form.update(changes)
    return form


def test_a_local_hour_goes_out_zone_by_zone_once_the_clock_reaches_it(app) -> None:
    seed(app)
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/broadcasts/new").text)
    clock = app.extensions["nurture.clock"]  # Monday 2026-03-02 09:00 UTC

    checked = client.post(
        "/admin/broadcasts/new",
        data=new_form(
            token, when="later", scheduled_at="2026-03-03T10:00", local_time="y", action="check"
        ),
    )
    assert checked.status_code == 200
    assert 'data-impact="audience">4<' in checked.text
    assert "2026-03-03 10:00" in checked.text and count(Campaign) == 0
    answer = client.post(
        "/admin/broadcasts/new",
        data=new_form(token, when="later", scheduled_at="2026-03-03T10:00", local_time="y"),
    )
    assert answer.status_code == 302
    campaign = db.session.scalar(select(Campaign))
    body = campaign_dict(campaign)
    assert (body["scheduled_at"], body["local_time"]) == ("2026-03-03T10:00:00", True)
    page = client.get(f"/admin/broadcasts/{campaign.id}").text
    assert 'data-phase="scheduled"' in page

    def at(iso_utc: str) -> int:
        from datetime import datetime

        clock.set(datetime.fromisoformat(iso_utc))
        created = run_broadcasts(db.session, clock.now())
        db.session.commit()
        return created

    assert at("2026-03-03T00:30:00+00:00") == 0
    assert at("2026-03-03T01:00:00+00:00") == 1  # 10:00 in Tokyo
    assert at("2026-03-03T09:30:00+00:00") == 1  # Berlin
    assert at("2026-03-03T10:00:00+00:00") == 1  # Dee has no zone: the team's (UTC)
    assert at("2026-03-03T12:00:00+00:00") == 0
    assert at("2026-03-03T15:30:00+00:00") == 1  # New York
    assert at("2026-03-04T12:00:00+00:00") == 0  # the last zone is past: it is closed
    assert count(Message, Message.campaign_id == campaign.id) == 4
    assert 'data-phase="sending"' in client.get(f"/admin/broadcasts/{campaign.id}").text


def test_a_time_is_read_in_the_team_zone_and_a_segment_may_be_the_audience(app) -> None:
    seed(app)
    app.config["TEAM_TIMEZONE"] = "Europe/Berlin"
    now = app.extensions["nurture.clock"].now()
    segment = save_segment(
        db.session,
        "Network in Asia",
        {"field": "timezone", "op": "starts_with", "value": "Asia/"},
        now,
    )
    db.session.commit()
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/broadcasts/new").text)
    assert "Network in Asia" in client.get("/admin/broadcasts/new").text

    answer = client.post(
        "/admin/broadcasts/new",
        data=new_form(
            token,
            audience_kind="segment",
            audience_segment=str(segment.id),
            when="later",
            scheduled_at="2026-03-05T10:00",
        ),
    )

    assert answer.status_code == 302
    campaign = db.session.scalar(select(Campaign))
    body = campaign_dict(campaign)
    assert body["entry"] == {"segment_id": segment.id}
    assert body["scheduled_at"] == "2026-03-05T09:00:00+00:00"  # 10:00 in Berlin
    assert body["local_time"] is False
    listing = client.get("/admin/broadcasts").text
    assert "Network in Asia" in listing and 'data-phase="scheduled"' in listing
    assert run_broadcasts(db.session, now + timedelta(days=3, minutes=-1)) == 0
    assert run_broadcasts(db.session, now + timedelta(days=3)) == 1  # 09:00 UTC on the 5th


def test_every_problem_is_named_at_its_field_and_nothing_is_created(app) -> None:
    seed(app)
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/broadcasts/new").text)

    cases = [
        ({"audience_tag": ""}, "audience_tag", "Must be a tag name"),
        ({"audience_kind": "segment", "audience_segment": ""}, "audience_segment", "No segment"),
        ({"template": ""}, "template", "Give either a template name or html"),
        ({"template": "no_such"}, "template", "No template named 'no_such'"),
        ({"topic": "gossip"}, "topic", "Must be one of checkins, newsletter, job_alerts"),
        ({"when": "later", "scheduled_at": "soon"}, "scheduled_at", "An ISO-8601 time"),
        (
            {"when": "later", "scheduled_at": "2026-03-02T08:59"},
            "scheduled_at",
            "That time has passed",
        ),
        (
            {"when": "later", "scheduled_at": "2026-03-01T20:00", "local_time": "y"},
            "scheduled_at",
            "That hour has passed in every time zone",
        ),
        ({"audience_tag": "nobody-has-it"}, "audience_tag", "Nobody in this audience"),
    ]
    for changes, field, problem in cases:
        answer = client.post("/admin/broadcasts/new", data=new_form(token, **changes))
        assert answer.status_code == 422, changes
        html = answer.get_data(as_text=True)
        errors = re.findall(
            r'<label for="([\w-]+)">(?:(?!<label).)*?class="error" role="alert">'
            r"([^<]+)",
            html,
            re.S,
        )
        errors = [(f, entities.unescape(e)[: len(problem)]) for f, e in errors]
        assert errors == [(field, problem)], changes
        assert "Nothing was scheduled" in html
    assert count(Campaign) == 0

    # A form without its CSRF token is refused before anything happens.
    assert (
        client.post(
            "/admin/broadcasts/new",
            data={k: v for k, v in new_form(token).items() if k != "csrf_token"},
        ).status_code
        == 400
    )
    assert count(Campaign) == 0


def test_a_broadcast_is_not_opened_in_the_drip_builder(app) -> None:
    seed(app)
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/broadcasts/new").text)
    client.post("/admin/broadcasts/new", data=new_form(token))
    campaign = db.session.scalar(select(Campaign))

    answer = client.get(f"/admin/campaigns/{campaign.id}/edit")

    assert answer.status_code == 302
    assert answer.headers["Location"].endswith(f"/admin/broadcasts/{campaign.id}")
    # Broadcasts live apart from drips: the campaign page leads to the broadcast's own.
    answer = client.get(f"/admin/campaigns/{campaign.id}")
    assert answer.headers["Location"].endswith(f"/admin/broadcasts/{campaign.id}")
    assert "No campaigns yet" in client.get("/admin/campaigns").text
    assert client.get("/admin/broadcasts/999").status_code == 404


def test_the_starters_sample_copy_never_goes_out(app) -> None:
    seed(app, newsletter=False)
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/broadcasts/new").text)
    for action in ("check", "confirm"):
        answer = client.post("/admin/broadcasts/new", data=new_form(token, action=action))
        assert answer.status_code == 422
        problem = entities.unescape(answer.text)
        assert "still holds the newsletter starter's sample copy, “This quarter we" in problem
    assert count(Campaign) == 0
