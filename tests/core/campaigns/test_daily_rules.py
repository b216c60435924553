"""The rules behind the admin's daily journeys, without a browser: why mail waits, personal
mail and the cap, exclusive groups, segment entries, overlaps, outlooks, stages, resubscribing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.audience import search, segments, stages
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.entries import check_segments, keep_out_current_members
from nurture.core.campaigns.timing import Cap, Timing, describe_hold, hold_for
from nurture.core.compliance import unsubscribe
from nurture.core.compliance.suppressions import suppress
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment, Event, Message, Step, Suppression
from nurture.tasks.sending import template_library
from nurture.workflows.ats import handle_ats_event
from nurture.workflows.candidates import bulk_enrol, save_candidate
from tests.conftest import running_app

MONDAY = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 08:00 in Berlin


@pytest.fixture
def app(database_url: str, clock):
    """The app on SQLite and on PostgreSQL: these rules are SQL on both."""
    with running_app(
        database_url, clock, REDIS_URL="redis://127.0.0.1:1/0", SMTP_URL="smtp://127.0.0.1:1"
    ) as app:
        yield app


def now(app: Flask) -> datetime:
    return app.extensions["nurture.clock"].now()


def drip(app: Flask, name: str, *steps: dict, **body) -> Campaign:
    campaign = campaign_service.create_campaign(
        db.session,
        {"name": name, "kind": "drip", "steps": list(steps), **body},
        template_library(app),
        now(app),
    )
    campaign_service.set_status(db.session, campaign, "active", now(app))
    db.session.commit()
    return campaign


FOLLOW_UP = {"delay": "PT0S", "template": "rejection_followup"}
CHECK_IN = {"delay": "PT0S", "template": "checkin_3_months"}


# --- why a mail waits --------------------------------------------------------------------------


def test_personal_mail_skips_the_cap_and_every_hold_says_why() -> None:
    timing = Timing(team_zone="Europe/Berlin", cap=Cap(2, 7))
    ana = Candidate(email="ana@example.org", timezone="Europe/Berlin")
    anytime = Campaign(send_window={})
    office = Campaign(send_window={"start": "09:00", "end": "17:00"})
    sent = [MONDAY - timedelta(days=1), MONDAY - timedelta(days=2)]

    held = hold_for(ana, anytime, Step(category="regular"), timing, MONDAY, sent)
    assert held.reason == "frequency cap" and held.until == MONDAY + timedelta(days=5)
    assert hold_for(ana, anytime, Step(category="personal"), timing, MONDAY, sent) is None
    # Personal mail still waits for the window: the cap is what it skips, not office hours.
    held = hold_for(ana, office, Step(category="personal"), timing, MONDAY, sent)
    assert (held.reason, held.until) == ("send window", MONDAY + timedelta(hours=1))
    ana.paused_until = MONDAY + timedelta(days=30)
    assert hold_for(ana, anytime, Step(category="personal"), timing, MONDAY, []).reason == "paused"
    # Configurable: with no exemption, the cap holds everything.
    strict = Timing(cap=Cap(2, 7), cap_exempt=())
    ana.paused_until = None
    assert hold_for(ana, anytime, Step(category="personal"), strict, MONDAY, sent) is not None
    assert describe_hold("send window", window=office.send_window, tz_name="Europe/Berlin") == (
        "waiting for the send window 09:00–17:00 Europe/Berlin"
    )
    assert describe_hold("frequency cap", cap=Cap(2, 7)) == (
        "held by the frequency cap (2 mails per 7 days)"
    )


def test_the_follow_up_starter_is_personal_mail_by_default(app: Flask) -> None:
    campaign = drip(app, "Silver", FOLLOW_UP, {**CHECK_IN, "delay": "P3D"})
    assert [s.category for s in campaign.steps] == ["personal", "regular"]
    assert campaign_service.campaign_dict(campaign)["steps"][0]["category"] == "personal"


# --- one follow-up per rejection ------------------------------------------------------------------


def test_an_exclusive_group_lets_a_candidate_into_one_of_its_campaigns(app: Flask) -> None:
    first = drip(app, "Silver", FOLLOW_UP, entry={"ats_event": "candidate.rejected"},
                 exclusive_group="rejection-follow-up")  # fmt: skip
    second = drip(app, "Engineering", FOLLOW_UP, entry={"ats_event": "candidate.rejected"},
                  exclusive_group="rejection-follow-up")  # fmt: skip
    loose = drip(app, "Loose", FOLLOW_UP, entry={"ats_event": "candidate.rejected"})
    answer = handle_ats_event(
        db.session, {"type": "candidate.rejected", "candidate": {"email": "a@example.org"}},
        now(app),
    )  # fmt: skip
    db.session.commit()
    assert answer["enrolled_campaign_ids"] == [first.id, loose.id]
    # Overlap as the activation page says it: the grouped one nobody gets twice, the loose one 1.
    overlap = {o.name: (o.both, o.exclusive) for o in campaign_service.overlaps(
        db.session, second, now(app))}  # fmt: skip
    assert overlap == {"Silver": (0, True), "Loose": (1, False)}
    # Bulk enrolment says who was left out for being in the group.
    ids = select(Candidate.id)
    outcome = bulk_enrol(db.session, ids, second, now(app))
    assert outcome.enrolled == 0
    assert outcome.skipped == {"in another “rejection-follow-up” campaign": 1}


# --- a segment as an extra entry --------------------------------------------------------------


def test_only_those_who_join_the_segment_from_now_enter_when_asked(app: Flask) -> None:
    for n in range(3):
        save_candidate(db.session, {"email": f"p{n}@example.org", "tags": ["spring"]}, now(app))
    segment = segments.save_segment(db.session, "Spring", {"tag": "spring"}, now(app))
    campaign = campaign_service.create_campaign(
        db.session,
        {"name": "Spring", "kind": "drip", "steps": [CHECK_IN],
         "entry": {"ats_event": "candidate.rejected"}, "entry_segment_id": segment.id},
        template_library(app), now(app),
    )  # fmt: skip
    impact = campaign_service.status_change_impact(db.session, campaign, "activate", now(app))
    assert impact["segment_now"] == 3
    campaign_service.apply_action(db.session, campaign, "activate", now(app),
                                  segment_members=False)  # fmt: skip
    db.session.commit()

    def active() -> int:
        return db.session.scalar(
            select(func.count()).where(Enrolment.campaign_id == campaign.id,
                                       Enrolment.status == "active"))  # fmt: skip

    check_segments(db.session, now(app))
    assert active() == 0  # the three there at activation stay out
    save_candidate(db.session, {"email": "new@example.org", "tags": ["spring"]}, now(app))
    assert active() == 1
    # One of the three leaves the segment and comes back: now they have joined, and enter.
    p0 = db.session.scalar(select(Candidate).where(Candidate.email == "p0@example.org"))
    p0.tags = []
    db.session.flush()
    check_segments(db.session, now(app))
    save_candidate(db.session, {"email": "p0@example.org", "tags": ["spring"]}, now(app))
    assert active() == 2
    # The rows that kept them out are no enrolments anyone went through.
    assert campaign_service.enrolments_page(db.session, campaign, 1)[1] == 2
    assert keep_out_current_members(db.session, campaign, now(app)) == 0  # all are in, or out


# --- what becomes of a step with a condition -----------------------------------------------------


def test_an_enrolment_says_when_its_next_condition_cannot_be_met(app: Flask) -> None:
    campaign = drip(app, "Silver", FOLLOW_UP,
                    {**CHECK_IN, "delay": "P3D", "condition": "previous_opened"},
                    entry={"ats_event": "candidate.rejected"})  # fmt: skip
    outlooks = {}
    for email, state, opened in (("a@x.org", "sent", True), ("b@x.org", "sent", False),
                                 ("c@x.org", "skipped", False)):  # fmt: skip
        candidate, _ = save_candidate(db.session, {"email": email}, now(app))
        enrolment = Enrolment(candidate_id=candidate.id, campaign_id=campaign.id,
                              next_position=1, status="active", created_at=now(app))  # fmt: skip
        db.session.add(enrolment)
        db.session.flush()
        message = Message(candidate_id=candidate.id, campaign_id=campaign.id,
                          step_id=campaign.steps[0].id, enrolment_id=enrolment.id, state=state,
                          error="suppressed" if state == "skipped" else "",
                          queued_at=now(app))  # fmt: skip
        db.session.add(message)
        db.session.flush()
        if opened:
            db.session.add(Event(message_id=message.id, candidate_id=candidate.id, kind="open",
                                 created_at=now(app)))  # fmt: skip
        outlooks[email] = enrolment
    db.session.flush()
    found = campaign_service.outlooks(db.session, list(outlooks.values()))
    said = {email: found[e.id] for email, e in outlooks.items()}
    assert said["a@x.org"].text == "condition met: they opened step 1"
    assert said["b@x.org"].text.startswith("only if they open step 1 before it is due")
    assert (
        said["c@x.org"].doomed and "step 1 was never delivered (suppressed)" in said["c@x.org"].text
    )


# --- stages, and zero matches explained ----------------------------------------------------------


def test_stages_have_one_spelling_and_a_rename_merges_them(app: Flask) -> None:
    for n, stage in enumerate(["Onsite", "on-site", "ON SITE", "Final interview"]):
        skills = ["python", "sql"] if n % 2 else ["python"]
        save_candidate(
            db.session, {"email": f"s{n}@example.org", "stage": stage, "skills": skills}, now(app)
        )
    # The builder's skill picker: what exists, most common first.
    assert search.skill_counts(db.session, "") == [("python", 4), ("sql", 2)]
    assert search.skill_counts(db.session, "SQ") == [("sql", 2)]
    assert stages.names(db.session) == ["Onsite", "Final interview"]
    final = next(s for s in stages.list_stages(db.session) if s.name == "Final interview")
    assert stages.rename(db.session, final.id, "onsite") == ("Onsite", 1)  # merged
    assert [(s.name, s.candidates) for s in stages.list_stages(db.session)] == [("Onsite", 4)]
    # Text rules ignore case, so "onsite" typed in the builder finds them all.
    assert segments.count(db.session, {"field": "stage", "op": "eq", "value": "onsite"},
                          now(app)) == 4  # fmt: skip
    why = segments.explain_zero(db.session, {"all": [
        {"field": "stage", "op": "eq", "value": "Onsit"}, {"tag": "vip"}]}, now(app))  # fmt: skip
    assert why == [
        "nobody matches: stage is “Onsit”; known values: “Onsite” (4)",
        "nobody matches: tagged “vip”",
    ]


# --- coming back after unsubscribing --------------------------------------------------------------


def test_only_their_own_unsubscribe_can_be_undone(app: Flask) -> None:
    ana, _ = save_candidate(db.session, {"email": "ana@example.org"}, now(app))
    bo, _ = save_candidate(db.session, {"email": "bo@example.org"}, now(app))
    unsubscribe.unsubscribe(db.session, ana, None, now(app))
    unsubscribe.record_reason(db.session, ana, "too_many", "  Three  a week. ", now(app))
    bo.status = "unsubscribed"
    suppress(db.session, bo.email, "complained", now(app))
    db.session.flush()
    assert db.session.scalar(select(Event.note).where(Event.candidate_id == ana.id)) == (
        "Three a week."
    )
    assert unsubscribe.resubscribe(db.session, ana, now(app)) is True
    assert ana.status == "active" and ana.consent_at == now(app)
    assert unsubscribe.resubscribe(db.session, bo, now(app)) is False  # a complaint stays
    assert [s.reason for s in db.session.scalars(select(Suppression))] == ["complained"]
