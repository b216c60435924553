"""The drip builder's timing and entry fields: send window, topic, which rejections enter, an
extra wait, re-entry; saved through the campaign service's own checks and shown back."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from nurture.core.campaigns import service as campaign_service
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment
from nurture.tasks.sending import template_library
from tests.conftest import ats_post, auth_headers
from tests.web.admin.conftest import login, screenshot
from tests.web.admin.test_campaigns import builder_form, csrf_of, signed_in

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


def count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def shoot(page, name: str) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, name)


def api_campaign(app, campaign_id: int) -> dict[str, Any]:
    """GET /api/v1/campaigns/<id>, as a script would."""
    headers = auth_headers(app, "viewer")
    # Its own app context: the request's session (it notes the token's use) ends with it,
    # instead of holding SQLite's write lock in the test's session while the browser saves.
    with app.app_context():
        answer = app.test_client().get(f"/api/v1/campaigns/{campaign_id}", headers=headers)
    assert answer.status_code == 200
    return answer.json


def field_error(page, selector: str) -> str:
    return page.locator(f".field:has({selector}) .error").inner_text()


# --- in a real browser ---------------------------------------------------------------------------


def test_a_send_window_and_entry_filter_built_in_the_admin_are_what_the_api_shows(
    page, live_app, live_server
) -> None:
    login(page, "editor")
    page.click("nav >> text=Campaigns")
    page.click("text=New drip")
    page.wait_for_url("**/admin/campaigns/new")
    assert page.locator("#topic").input_value() == "checkins"
    assert page.locator("#reentry-1").is_checked()  # after_exit, as the API does
    assert page.locator("#window_mode-0").is_checked()  # any time
    assert page.locator("#exit_replied").is_checked()  # a reply ends the drip by default

    page.fill("#name", "Late-stage rejections")
    page.check("#entry_type-1")  # the ATS rejects them
    page.fill("#entry_reasons", "Position filled, Hired another candidate")
    page.fill("#entry_stages", "Onsite, Final interview")
    page.check("#reentry-0")  # never again
    page.check("#window_mode-1")
    for day in WEEKDAYS:  # a window with no day in it
        page.uncheck(f"input[name=window_days][value={day}]")
    page.fill("#window_start", "09:00")
    page.fill("#window_end", "17:00")
    page.fill("#entry_delay_amount", "-1")
    page.locator("#step-0 select[name$=template]").select_option("rejection_followup")
    page.click("text=Save as draft")

    assert "choose at least one day" in field_error(page, "input[name=window_days]").lower()
    assert field_error(page, "#entry_delay_amount") == "A delay cannot be negative"
    assert page.locator(".field.has-error").count() == 2  # nothing else is blamed
    assert page.locator("#entry_reasons").input_value() == (
        "Position filled, Hired another candidate"
    )  # everything typed stays
    assert page.locator("#window_mode-1").is_checked()
    assert count(Campaign) == 0
    shoot(page, "campaign-timing-errors")

    for day in WEEKDAYS:
        page.check(f"input[name=window_days][value={day}]")
    page.fill("#entry_delay_amount", "2")
    page.click("text=Save as draft")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    campaign = db.session.scalar(select(Campaign))

    body = api_campaign(live_app, campaign.id)
    assert body["send_window"] == {"days": WEEKDAYS, "start": "09:00", "end": "17:00"}
    assert body["entry_filter"] == {
        "rejection_reasons": ["hired another candidate", "position filled"],
        "stages": ["final interview", "onsite"],
        "delay": "P2D",
    }
    assert (body["reentry"], body["topic"]) == ("never", "checkins")
    assert body["entry"] == {"ats_event": "candidate.rejected"}
    assert body["exit_on"] == ["hired", "reapplied", "replied", "left_segment"]

    setup = {
        key: page.locator(f"[data-setup={key}]").inner_text()
        for key in ("window", "reasons", "stages", "wait", "reentry", "topic")
    }
    assert setup["window"].startswith("Mon–Fri, 09:00–17:00")
    assert "in each candidate's time zone" in setup["window"]
    assert setup["reasons"] == "rejected for: hired another candidate, position filled"
    assert setup["stages"] == "reached: final interview, onsite"
    assert setup["wait"].startswith("2 days after entering")
    assert setup["reentry"].startswith("Never")
    assert setup["topic"] == "Check-ins"
    shoot(page, "campaign-timing-detail")

    # The builder shows it all back; saving without a change changes nothing.
    page.click("a:has-text('Edit')")
    assert page.locator("#window_mode-1").is_checked()
    assert [
        page.locator(f"input[name=window_days][value={d}]").is_checked()
        for d in ("mon", "fri", "sat", "sun")
    ] == [True, True, False, False]
    assert page.locator("#entry_delay_amount").input_value() == "2"
    assert page.locator("#reentry-0").is_checked()
    page.click("text=Save changes")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    assert api_campaign(live_app, campaign.id) == body

    # Back to any time, newsletter topic, re-entry after the earlier run.
    page.click("a:has-text('Edit')")
    page.check("#window_mode-0")
    page.select_option("#topic", "newsletter")
    page.check("#reentry-1")
    page.uncheck("#exit_replied")  # this team keeps the drip going when people answer
    page.click("text=Save changes")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    changed = api_campaign(live_app, campaign.id)
    assert changed["exit_on"] == ["hired", "reapplied", "left_segment"]
    assert (changed["send_window"], changed["topic"], changed["reentry"]) == (
        {},
        "newsletter",
        "after_exit",
    )
    assert changed["entry_filter"] == body["entry_filter"]
    assert page.locator("[data-setup=window]").inner_text() == "Any time"


# --- over plain HTTP -----------------------------------------------------------------------------


def timing_form(token: str, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = builder_form(
        token,
        entry_type="ats_event",
        entry_tag="",
        topic="checkins",
        reentry="after_exit",
        entry_reasons="position filled",
        entry_stages="",
        entry_delay_amount="2",
        entry_delay_unit="days",
        window_mode="window",
        window_days=WEEKDAYS,
        window_start="09:00",
        window_end="17:00",
    )
    for key in [k for k in form if k.startswith("steps-1-")]:
        del form[key]  # one step is enough here
    form.update(changes)
    return form


def errors_at(html: str) -> dict[str, str]:
    """Field id → its error, for every field the page marks."""
    found = re.findall(
        r'class="field[^"]*has-error[^"]*">(.*?)class="error" role="alert">([^<]+)', html, re.S
    )
    named = {}
    for inside, problem in found:
        ids = re.findall(r'(?:for|id|name)="([\w-]+)"', inside)
        named[ids[0] if ids else "?"] = problem
    return named


def test_each_problem_is_named_at_its_field_and_nothing_is_saved(app) -> None:
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/campaigns/new").text)

    cases = [
        ({"window_start": "9am"}, "window_start", "A time as HH:MM"),
        ({"window_end": "09:00"}, "window_end", "The window must not be empty"),
        ({"topic": "gossip"}, "topic", "Must be one of checkins, newsletter, job_alerts"),
        ({"reentry": "sometimes"}, "reentry-0", "Must be one of never, after_exit, always"),
        ({"entry_delay_amount": "soon"}, "entry_delay_amount", "Enter a whole number of days"),
        (
            {"entry_type": "tag", "entry_tag": "pool"},
            "entry_reasons",
            "Only candidates the ATS rejects are filtered this way",
        ),
    ]
    for changes, field, problem in cases:
        answer = client.post("/admin/campaigns/new", data=timing_form(token, **changes))
        assert answer.status_code == 422, changes
        found = errors_at(answer.get_data(as_text=True))
        assert list(found) == [field], (changes, found)
        assert found[field].startswith(problem), (changes, found)
    assert count(Campaign) == 0

    # The window's fields are not checked while the campaign sends at any time.
    answer = client.post(
        "/admin/campaigns/new", data=timing_form(token, window_mode="any", window_start="whenever")
    )
    assert answer.status_code == 302
    assert db.session.scalar(select(Campaign)).send_window == {}


def test_what_the_api_set_round_trips_through_the_builder(app) -> None:
    client = signed_in(app, "editor")
    now = app.extensions["nurture.clock"].now()
    campaign = campaign_service.create_campaign(
        db.session,
        {
            "name": "Night owls",
            "entry": {"ats_event": "candidate.rejected"},
            "send_window": {"start": "22:00", "end": "06:00"},
            "topic": "newsletter",
            "entry_filter": {"stages": ["onsite"], "delay": "PT90M"},
            "reentry": "always",
            "steps": [{"delay": "P1D", "template": "rejection_followup"}],
        },
        template_library(app),
        now,
    )
    db.session.commit()
    before = campaign_service.campaign_dict(campaign)

    page = client.get(f"/admin/campaigns/{campaign.id}/edit").get_data(as_text=True)
    assert "PT90M (from the API)" in page
    assert re.search(r'id="window_mode-1"[^>]*checked|checked[^>]*id="window_mode-1"', page)
    assert page.count('name="window_days" type="checkbox"') == 7
    assert page.count("checked") >= 7

    # Posted back as shown: an API delay neither unit fits, every day, a window past midnight.
    answer = client.post(
        f"/admin/campaigns/{campaign.id}/edit",
        data=timing_form(
            csrf_of(page),
            name="Night owls",
            entry_reasons="",
            entry_stages="onsite",
            entry_delay_amount="",
            entry_delay_unit="iso",
            entry_delay="PT90M",
            window_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            window_start="22:00",
            window_end="06:00",
            topic="newsletter",
            reentry="always",
            **{"steps-0-id": str(campaign.steps[0].id)},
        ),
    )

    assert answer.status_code == 302, errors_at(answer.get_data(as_text=True))
    db.session.expire_all()
    after = campaign_service.campaign_dict(db.session.get(Campaign, campaign.id))
    for key in ("send_window", "topic", "entry_filter", "reentry"):
        assert after[key] == before[key], key
    assert 'data-setup="window">Every day, 22:00–06:00' in client.get(
        f"/admin/campaigns/{campaign.id}"
    ).get_data(as_text=True)


def test_only_the_rejections_named_enter_and_they_wait_the_extra_days(app) -> None:
    client = signed_in(app, "editor")
    token = csrf_of(client.get("/admin/campaigns/new").text)
    assert (
        client.post(
            "/admin/campaigns/new", data=timing_form(token, entry_stages="onsite")
        ).status_code
        == 302
    )
    campaign = db.session.scalar(select(Campaign))
    now = app.extensions["nurture.clock"].now()
    campaign_service.apply_action(db.session, campaign, "activate", now)
    db.session.commit()

    for email, reason, stage in (
        ("ana@example.org", "Position filled", "Onsite"),
        ("bo@example.org", "Position filled", "phone screen"),
        ("chen@example.org", "culture", "onsite"),
    ):
        answer = ats_post(
            client,
            {
                "type": "candidate.rejected",
                "candidate": {"email": email, "rejection_reason": reason, "stage": stage},
            },
        )
        assert answer.status_code < 300, answer.json

    enrolled = db.session.execute(
        select(Candidate.email, Enrolment.next_send_at).join(
            Enrolment, Enrolment.candidate_id == Candidate.id
        )
    ).all()
    # Two days of extra wait, then the first step's own day.
    assert enrolled == [("ana@example.org", now + timedelta(days=3))]


def test_a_viewer_cannot_change_the_timing(app) -> None:
    now = app.extensions["nurture.clock"].now()
    campaign = campaign_service.save_drip(
        db.session,
        None,
        {
            "name": "Weekdays",
            "entry": {"ats_event": "candidate.rejected"},
            "exit_on": ["hired"],
            "send_window": {"days": WEEKDAYS, "start": "09:00", "end": "17:00"},
            "entry_filter": {"stages": ["Onsite"], "delay_amount": "12", "delay_unit": "hours"},
            "steps": [
                {"delay_amount": "1", "delay_unit": "days", "template": "rejection_followup"}
            ],
        },
        template_library(app),
        now,
    )
    db.session.commit()
    assert campaign.entry_filter == {"stages": ["onsite"], "delay": "PT12H"}
    assert (campaign.topic, campaign.reentry) == ("checkins", "after_exit")  # the API's defaults
    viewer = signed_in(app, "viewer")
    page = viewer.get(f"/admin/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'data-setup="window">Mon–Fri, 09:00–17:00' in page
    assert 'data-setup="wait">12 hours after entering' in page
    assert f"/admin/campaigns/{campaign.id}/edit" not in page

    answer = viewer.post(
        f"/admin/campaigns/{campaign.id}/edit",
        data=timing_form(csrf_of(page), window_mode="any", topic="newsletter"),
    )

    assert answer.status_code == 403
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign.id)
    assert (campaign.send_window["start"], campaign.topic) == ("09:00", "checkins")


def test_exit_rules_round_trip_through_the_builder(app) -> None:
    client = signed_in(app, "editor")
    now = app.extensions["nurture.clock"].now()
    campaign = campaign_service.create_campaign(
        db.session,
        {
            "name": "Pool",
            "entry": {"ats_event": "candidate.rejected"},
            "exit_on": ["hired", "reapplied", "replied", "left_segment"],
            "steps": [{"delay": "P1D", "template": "rejection_followup"}],
        },
        template_library(app),
        now,
    )
    db.session.commit()
    page = client.get(f"/admin/campaigns/{campaign.id}/edit").get_data(as_text=True)
    box = re.search(r'<input[^>]*id="exit_left_segment"[^>]*>', page)
    assert box and "checked" in box.group(0)
    form = timing_form(csrf_of(page), name="Pool", **{"steps-0-id": str(campaign.steps[0].id)})
    form.pop("exit_reapplied")  # unticked boxes are not posted
    answer = client.post(f"/admin/campaigns/{campaign.id}/edit", data=form)
    assert answer.status_code == 302, errors_at(answer.get_data(as_text=True))
    db.session.expire_all()
    # Unticked: re-applying and leaving the segment; a reply still ends it, as set.
    assert db.session.get(Campaign, campaign.id).exit_on == ["hired", "replied"]
    form["exit_left_segment"] = "y"
    client.post(f"/admin/campaigns/{campaign.id}/edit", data=form)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).exit_on == ["hired", "replied", "left_segment"]
    form.pop("exit_replied")  # and now a reply no longer ends it
    client.post(f"/admin/campaigns/{campaign.id}/edit", data=form)
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).exit_on == ["hired", "left_segment"]
