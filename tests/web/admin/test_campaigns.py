"""Campaigns in the admin: build a drip, activate it, send, measure, pause; and who may do what."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.accounts.users import create_user
from nurture.core.campaigns import service as campaign_service
from nurture.core.errors import Conflict, ValidationError
from nurture.extensions import db
from nurture.models import (
    Campaign,
    Candidate,
    Enrolment,
    Message,
    MessageState,
    Step,
)
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import template_library
from nurture.workflows.candidates import save_candidate
from tests.web.admin.conftest import PASSWORD, login, screenshot, work_off

TAG = "silver-medalist"
A_PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile"


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def shoot(page, name: str) -> None:
    """A screenshot from the top of the page (a form post may have scrolled to a step)."""
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, name)


def step_card(page, number: int):
    return page.locator(f"#step-{number - 1}")


# --- the journey in a real browser ---------------------------------------------------------------


def test_build_activate_send_measure_and_pause_a_drip(
    page, live_app, live_server, smtp, browser
) -> None:
    now = live_app.extensions["nurture.clock"].now()
    for name in ("ana", "bo", "chen"):
        save_candidate(
            db.session,
            {"email": f"{name}@example.org", "first_name": name.title(), "tags": [TAG, "backend"]},
            now,
        )
    save_candidate(db.session, {"email": "dee@example.org", "tags": ["frontend"]}, now)
    db.session.commit()

    login(page, "editor")
    page.click("nav >> text=Campaigns")
    page.click("text=New drip")
    page.wait_for_url("**/admin/campaigns/new")

    # Two steps, entered in the wrong order and with two mistakes.
    page.fill("#entry_tag", TAG)
    step_card(page, 1).locator("input[name$=delay_amount]").fill("3")
    step_card(page, 1).locator("select[name$=template]").select_option("talent_network_invite")
    page.click("text=+ Add a step")
    step_card(page, 2).locator("input[name$=delay_amount]").fill("-1")
    step_card(page, 2).locator("select[name$=template]").select_option("rejection_followup")
    page.click("text=Save as draft")

    assert page.locator(".field.has-error #name").count() == 1
    assert "A campaign needs a name" in page.locator(".field:has(#name) .error").inner_text()
    delay_error = step_card(page, 2).locator(".field:has(input[name$=delay_amount]) .error")
    assert delay_error.inner_text() == "A delay cannot be negative"
    assert step_card(page, 1).locator(".error").count() == 0
    assert count(Campaign) == 0  # nothing half-saved
    shoot(page, "campaigns-builder-errors")

    page.fill("#name", "Silver medalists: stay in touch")
    page.fill("#description", "Follow up after a late-stage rejection, then invite to the network.")
    step_card(page, 2).locator("input[name$=delay_amount]").fill("0")
    # The follow-up should come first: move it up (a plain form post, no JavaScript needed).
    step_card(page, 2).locator("button[value='up:1']").click()
    assert step_card(page, 1).locator("select[name$=template]").input_value() == (
        "rejection_followup"
    )
    assert step_card(page, 2).locator("select[name$=template]").input_value() == (
        "talent_network_invite"
    )
    assert page.input_value("#name") == "Silver medalists: stay in touch"  # kept across moves
    assert step_card(page, 1).locator("select[name$=condition]").count() == 0
    step_card(page, 2).locator("select[name$=condition]").select_option("previous_not_opened")
    shoot(page, "campaigns-builder")
    page.click("text=Save as draft")

    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    assert "saved as a draft" in page.locator(".flash.success").inner_text()
    campaign = db.session.scalar(select(Campaign))
    assert [
        (s.position, s.template, s.delay, s.delay_seconds, s.condition) for s in campaign.steps
    ] == [
        (0, "rejection_followup", "P0D", 0, ""),
        (1, "talent_network_invite", "P3D", 3 * 86400, "previous_not_opened"),
    ]
    assert campaign.entry_value == TAG and campaign.status == "draft"

    page.click("text=Activate…")
    assert page.locator("[data-impact=entering]").inner_text() == "3"
    shoot(page, "campaigns-activate")
    page.click("button:has-text('Activate campaign')")
    flash = page.locator(".flash.success").inner_text()
    assert "is active. 3 candidates with the tag entered it." in flash

    # Send: the scheduler's pass and the worker, in this process.
    with live_app.app_context():
        assert run_tick(live_app).created == 3
    work_off(live_app)
    assert len(smtp.messages) == 3

    # Ana opens her mail: her phone fetches the tracking pixel.
    mail = next(m.as_email() for m in smtp.messages if m.rcpt_tos == ["ana@example.org"])
    html = mail.get_body(("html",)).get_content()
    pixel = re.search(r'src="https?://[^/"]+(/o/[^"]+\.gif)"', html)[1]
    live_app.extensions["nurture.clock"].advance(timedelta(minutes=7))  # a person, not a scanner
    assert page.request.get(live_server.url + pixel, headers={"User-Agent": A_PHONE}).ok

    page.reload()
    first = page.locator("table.funnel tbody tr").first
    cells = first.locator("td")
    assert cells.nth(1).inner_text() == "3"
    assert cells.nth(2).inner_text().split() == ["1", "33.3%"]
    page.wait_for_selector("#funnel-chart[data-rendered]")
    page.wait_for_selector("#time-chart[data-rendered]")
    assert page.locator("#enrolments + .table-wrap tbody tr").count() == 3
    assert "Step 2 of 2" in page.locator("#enrolments + .table-wrap").inner_text()
    shoot(page, "campaigns-detail")

    page.click("text=Pause…")
    assert page.locator("[data-impact=active]").inner_text() == "3"
    page.click("button:has-text('Pause campaign')")
    assert "is paused" in page.locator(".flash.success").inner_text()
    db.session.refresh(campaign)
    assert campaign.status == "paused"

    page.goto("/admin/campaigns")
    assert page.locator("table.campaign-list tbody tr").count() == 1
    shoot(page, "campaigns-list")
    page.goto("/admin/")
    assert "Paused with 3 candidates waiting" in page.locator(".attention-list").inner_text()
    page.wait_for_selector("#dashboard-chart[data-rendered]")
    shoot(page, "dashboard")

    # A viewer reads, sees no buttons that change anything, and is refused when posting anyway.
    viewer = browser.new_context(
        viewport={"width": 1280, "height": 900}, base_url=live_server.url
    ).new_page()
    login(viewer, "viewer")
    viewer.goto("/admin/campaigns")
    assert viewer.locator("text=New drip").count() == 0
    viewer.goto(f"/admin/campaigns/{campaign.id}")
    assert viewer.locator(".page-head .actions").count() == 0
    assert viewer.locator("table.funnel").count() == 1
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    for path in (
        f"/admin/campaigns/{campaign.id}/resume",
        f"/admin/campaigns/{campaign.id}/edit",
        "/admin/campaigns/new",
    ):
        answer = viewer.request.post(
            live_server.url + path, form={"csrf_token": token, "name": "Mine now"}
        )
        assert answer.status == 403, path
    assert (
        viewer.request.get(live_server.url + f"/admin/campaigns/{campaign.id}/resume").status == 403
    )
    viewer.context.close()
    db.session.refresh(campaign)
    assert campaign.status == "paused" and campaign.name == "Silver medalists: stay in touch"


# --- edge cases over plain HTTP and at the service ---------------------------------------------

DRIP = {
    "name": "Nurture",
    "entry": {"tag": TAG},
    "exit_on": ["hired"],
    "sender": {"name": "Acme Talent", "email": "talent@acme.example.com"},
    "steps": [
        {"delay_amount": "0", "delay_unit": "days", "template": "rejection_followup"},
        {
            "delay_amount": "12",
            "delay_unit": "hours",
            "template": "talent_network_invite",
            "condition": "previous_not_opened",
        },
        {"delay_amount": "3", "delay_unit": "days", "template": "checkin_3_months"},
    ],
}


def save(app: Flask, data: dict[str, Any], campaign: Campaign | None = None) -> Campaign:
    now = app.extensions["nurture.clock"].now()
    return campaign_service.save_drip(db.session, campaign, data, template_library(app), now)


def ids_of(campaign: Campaign) -> list[int]:
    return [step.id for step in campaign.steps]


def as_posted(campaign: Campaign, order: list[int] | None = None) -> dict[str, Any]:
    """The campaign as the builder would post it back, steps in ``order`` (indexes)."""
    steps = [
        {
            "id": s.id,
            "delay": s.delay,
            "template": s.template,
            "subject": s.subject,
            "condition": s.condition,
        }
        for s in campaign.steps
    ]
    steps = [steps[i] for i in (order if order is not None else range(len(steps)))]
    return {**DRIP, "steps": steps}


def test_the_builder_stores_days_hours_exit_rules_and_sender(app) -> None:
    campaign = save(app, DRIP)

    assert [(s.delay, s.delay_seconds) for s in campaign.steps] == [
        ("P0D", 0),
        ("PT12H", 43200),
        ("P3D", 259200),
    ]
    assert campaign.exit_on == ["hired"]
    assert (campaign.sender_name, campaign.sender_email) == (
        "Acme Talent",
        "talent@acme.example.com",
    )
    assert campaign.status == "draft" and campaign.kind == "drip"


@pytest.mark.parametrize(
    ("amount", "unit", "problem"),
    [
        ("-2", "days", "a delay cannot be negative"),
        ("two", "days", "enter a whole number of days, 0 or more"),
        ("", "hours", "enter a whole number of hours, 0 or more"),
        ("1", "weeks", "choose days or hours"),
    ],
)
def test_a_bad_delay_is_reported_at_its_step(app, amount, unit, problem) -> None:
    data = {**DRIP, "steps": [dict(s) for s in DRIP["steps"]]}
    data["steps"][2].update(delay_amount=amount, delay_unit=unit)

    with pytest.raises(ValidationError) as caught:
        save(app, data)

    assert caught.value.fields == {"steps[2].delay": problem}


def test_every_problem_is_reported_at_once_and_nothing_is_written(app) -> None:
    data = {
        **DRIP,
        "name": " ",
        "entry": {"tag": ""},
        "sender": {"email": "not an address"},
        "steps": [
            {
                "delay_amount": "1",
                "delay_unit": "days",
                "template": "",
                "condition": "previous_opened",
            },
            {"delay_amount": "1", "delay_unit": "days", "template": "no_such"},
        ],
    }

    with pytest.raises(ValidationError) as caught:
        save(app, data)

    assert set(caught.value.fields) == {
        "name",
        "entry.tag",
        "sender.email",
        "steps[0].template",
        "steps[0].condition",
        "steps[1].template",
    }
    assert caught.value.fields["steps[0].template"] == "choose a template"
    db.session.rollback()
    assert (count(Campaign), count(Step)) == (0, 0)


def test_steps_with_mail_in_their_history_keep_their_place(app) -> None:
    campaign = save(app, DRIP)
    first, second, third = ids_of(campaign)
    now = app.extensions["nurture.clock"].now()
    person, _ = save_candidate(db.session, {"email": "ana@example.org", "tags": [TAG]}, now)
    campaign_service.apply_action(db.session, campaign, "activate", now)
    db.session.add(
        Message(
            candidate_id=person.id,
            campaign_id=campaign.id,
            step_id=first,
            state=MessageState.SENT,
            queued_at=now,
            sent_at=now,
        )
    )
    db.session.commit()

    # Removing or moving the step that sent mail is refused, field by field, and changes nothing.
    with pytest.raises(ValidationError) as removed:
        save(app, as_posted(campaign, [1, 2]), campaign)
    assert "cannot be removed" in removed.value.fields["steps"]
    db.session.rollback()
    with pytest.raises(ValidationError) as moved:
        save(app, as_posted(campaign, [1, 0, 2]), campaign)
    assert moved.value.fields["steps[1].position"] == (
        "this step already has mail in its history, so it stays step 1"
    )
    db.session.rollback()
    assert ids_of(db.session.get(Campaign, campaign.id)) == [first, second, third]

    # The other steps may be reordered, edited, removed, and new ones added after.
    data = as_posted(campaign, [0, 2])
    data["steps"][1]["subject"] = "{{ candidate.first_name }}, a quick check-in"
    data["steps"].append(
        {
            "delay_amount": "30",
            "delay_unit": "days",
            "template": "talent_network_invite",
            "condition": "previous_clicked",
        }
    )
    save(app, data, campaign)
    db.session.commit()

    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign.id)
    assert ids_of(campaign)[:2] == [first, third]
    assert [(s.position, s.template, s.condition) for s in campaign.steps] == [
        (0, "rejection_followup", ""),
        (1, "checkin_3_months", ""),
        (2, "talent_network_invite", "previous_clicked"),
    ]
    assert campaign.steps[1].subject.endswith("a quick check-in")
    assert db.session.get(Step, second) is None
    assert count(Message) == 1  # the history is untouched


def test_archiving_ends_enrolments_and_drops_queued_mail(app) -> None:
    campaign = save(app, DRIP)
    now = app.extensions["nurture.clock"].now()
    for n in range(3):
        save_candidate(db.session, {"email": f"p{n}@example.org", "tags": [TAG]}, now)
    assert campaign_service.status_change_impact(db.session, campaign, "activate")["entering"] == 3
    campaign_service.apply_action(db.session, campaign, "activate", now)
    enrolment = db.session.scalar(select(Enrolment))
    db.session.add(
        Message(
            candidate_id=enrolment.candidate_id,
            campaign_id=campaign.id,
            step_id=campaign.steps[0].id,
            enrolment_id=enrolment.id,
            state=MessageState.QUEUED,
            queued_at=now,
        )
    )
    db.session.commit()

    impact = campaign_service.status_change_impact(db.session, campaign, "archive")
    assert (impact["active_enrolments"], impact["queued_messages"]) == (3, 1)
    campaign_service.apply_action(db.session, campaign, "archive", now + timedelta(hours=1))
    db.session.commit()

    assert campaign.status == "archived"
    assert {(e.status, e.exit_reason) for e in db.session.scalars(select(Enrolment))} == {
        ("exited", "archived")
    }
    message = db.session.scalar(select(Message))
    assert (message.state, message.error) == ("skipped", "campaign archived")
    with pytest.raises(Conflict, match="archived campaign cannot be activated"):
        campaign_service.apply_action(db.session, campaign, "activate", now)
    with pytest.raises(Conflict, match="archived campaign cannot be edited"):
        save(app, as_posted(campaign), campaign)


def signed_in(app: Flask, role: str):
    """A test client signed in through the login form as a new user with ``role``."""
    now = app.extensions["nurture.clock"].now()
    create_user(db.session, f"{role}@example.com", PASSWORD, role, now)
    db.session.commit()
    client = app.test_client()
    client.post(
        "/admin/login",
        data={
            "email": f"{role}@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_of(client.get("/admin/login").text),
        },
    )
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)[1]


def builder_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "name": "Nurture",
        "entry_type": "tag",
        "entry_tag": TAG,
        "exit_reapplied": "y",
        "exit_replied": "y",
        "sender_mode": "recruiter",
        "sender_name": "",
        "sender_email": "",
        "steps-0-id": "",
        "steps-0-delay_amount": "1",
        "steps-0-delay_unit": "days",
        "steps-0-template": "rejection_followup",
        "steps-0-subject": "",
        "steps-1-id": "",
        "steps-1-delay_amount": "2",
        "steps-1-delay_unit": "days",
        "steps-1-template": "checkin_3_months",
        "steps-1-subject": "",
        "steps-1-condition": "previous_opened",
        "action": "save",
    }
    form.update(changes)
    return form


def test_the_builder_page_shows_errors_at_their_fields_with_422(app) -> None:
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/campaigns/new").text)

    answer = client.post(
        "/admin/campaigns/new",
        data=builder_form(
            token, name="", **{"steps-1-delay_amount": "soon", "steps-1-template": ""}
        ),
    )

    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    step_2 = html[html.index('id="step-1"') :]
    assert "Enter a whole number of days, 0 or more" in step_2
    assert "Choose a template" in step_2
    assert re.search(r'class="field has-error">\s*<label for="name"', html)
    assert "Nothing was saved" in html
    assert count(Campaign) == 0


def test_moving_and_removing_steps_without_javascript_saves_nothing(app) -> None:
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/campaigns/new").text)

    moved = client.post("/admin/campaigns/new", data=builder_form(token, action="down:0"))
    removed = client.post("/admin/campaigns/new", data=builder_form(token, action="remove:0"))
    added = client.post("/admin/campaigns/new", data=builder_form(token, action="add"))

    assert moved.status_code == 200
    body = moved.get_data(as_text=True)
    assert body.index('value="checkin_3_months" selected') < body.index(
        'value="rejection_followup" selected'
    )
    assert 'id="step-1"' not in removed.get_data(as_text=True)
    assert 'id="step-2"' in added.get_data(as_text=True)
    assert count(Campaign) == 0


def test_a_status_change_the_campaign_does_not_allow_is_a_clear_error(app) -> None:
    client = signed_in(app, "editor")
    campaign = save(app, DRIP)
    db.session.commit()
    token = csrf_of(client.get(f"/admin/campaigns/{campaign.id}").text)

    answer = client.post(
        f"/admin/campaigns/{campaign.id}/pause", data={"csrf_token": token}, follow_redirects=True
    )

    assert "A draft campaign cannot be paused." in answer.get_data(as_text=True)
    db.session.refresh(campaign)
    assert campaign.status == "draft"


def test_a_status_change_without_csrf_token_is_refused(app) -> None:
    client = signed_in(app, "editor")
    campaign = save(app, DRIP)
    db.session.commit()

    answer = client.post(f"/admin/campaigns/{campaign.id}/activate")

    assert answer.status_code == 400
    db.session.refresh(campaign)
    assert campaign.status == "draft"
    assert count(Enrolment) == 0


def test_a_viewer_may_look_but_not_build(app) -> None:
    client = signed_in(app, "viewer")
    campaign = save(app, DRIP)
    db.session.commit()

    assert client.get("/admin/campaigns").status_code == 200
    assert client.get(f"/admin/campaigns/{campaign.id}").status_code == 200
    assert client.get("/admin/campaigns/new").status_code == 403
    assert client.get(f"/admin/campaigns/{campaign.id}/edit").status_code == 403
    assert client.get(f"/admin/campaigns/{campaign.id}/activate").status_code == 403


def test_the_enrolment_list_pages(app) -> None:
    client = signed_in(app, "viewer")
    campaign = save(app, DRIP)
    now = app.extensions["nurture.clock"].now()
    for n in range(30):
        save_candidate(db.session, {"email": f"p{n:02}@example.org", "tags": [TAG]}, now)
    campaign_service.apply_action(db.session, campaign, "activate", now)
    db.session.commit()
    assert count(Candidate) == 30

    first = client.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    second = client.get(f"/admin/campaigns/{campaign.id}?page=2").get_data(as_text=True)

    assert "1–25 of 30" in first and 'rel="next"' in first
    assert "26–30 of 30" in second and 'rel="prev"' in second


OWN_HTML = "<p>Hi {{ candidate.first_name }}</p>"


def test_editing_keeps_what_the_api_set_that_the_builder_does_not_show(app) -> None:
    client = signed_in(app, "editor")
    now = app.extensions["nurture.clock"].now()
    campaign = campaign_service.create_campaign(
        db.session,
        {
            "name": "From the API",
            "entry": {"ats_event": "candidate.rejected"},
            "send_window": {"start": "09:00", "end": "17:00"},
            "steps": [
                {"delay": "PT30S", "template": "rejection_followup"},
                {"delay": "P1D", "subject": "Hi", "html": OWN_HTML},
            ],
        },
        template_library(app),
        now,
    )
    db.session.commit()
    first, second = ids_of(campaign)

    page = client.get(f"/admin/campaigns/{campaign.id}/edit").get_data(as_text=True)
    assert "PT30S (from the API)" in page and "Its own HTML (from the API)" in page

    answer = client.post(
        f"/admin/campaigns/{campaign.id}/edit",
        data={
            "csrf_token": csrf_of(page),
            "name": "Renamed",
            "entry_type": "ats_event",
            "sender_mode": "team",
            "sender_email": "talent@acme.example.com",
            "steps-0-id": str(first),
            "steps-0-delay_unit": "iso",
            "steps-0-delay": "PT30S",
            "steps-0-delay_amount": "",
            "steps-0-template": "rejection_followup",
            "steps-1-id": str(second),
            "steps-1-delay_unit": "hours",
            "steps-1-delay_amount": "6",
            "steps-1-template": "__own_html__",
            "steps-1-subject": "Hi",
            "steps-1-condition": "previous_opened",
            "action": "save",
        },
    )

    assert answer.status_code == 302, answer.get_data(as_text=True)
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign.id)
    assert campaign.name == "Renamed" and not campaign.sender_is_recruiter
    assert campaign.send_window == {"start": "09:00", "end": "17:00"}
    assert campaign.exit_on == ["hired"]  # re-applying unticked; hired always exits
    assert [(s.id, s.delay, s.delay_seconds, s.template, s.condition) for s in campaign.steps] == [
        (first, "PT30S", 30, "rejection_followup", ""),
        (second, "PT6H", 21600, "", "previous_opened"),
    ]
    assert campaign.steps[1].html == OWN_HTML


def test_an_active_campaigns_sent_steps_are_shown_locked(app) -> None:
    client = signed_in(app, "editor")
    campaign = save(app, DRIP)
    now = app.extensions["nurture.clock"].now()
    person, _ = save_candidate(db.session, {"email": "ana@example.org", "tags": [TAG]}, now)
    campaign_service.apply_action(db.session, campaign, "activate", now)
    db.session.add(
        Message(
            candidate_id=person.id,
            campaign_id=campaign.id,
            step_id=campaign.steps[0].id,
            state=MessageState.SENT,
            queued_at=now,
            sent_at=now,
        )
    )
    db.session.commit()

    page = client.get(f"/admin/campaigns/{campaign.id}/edit").get_data(as_text=True)

    first = page[page.index('id="step-0"') : page.index('id="step-1"')]
    assert "1 in history · stays here" in first
    assert re.search(r'value="remove:0"[^>]*disabled', first)
    assert "This campaign is <strong>active</strong>" in page
