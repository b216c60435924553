"""Finding candidates: each filter and sort, paging and counting, bulk tag, export, timeline and
the candidate page's actions, on generated data (search and bulk tag on both databases)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.core.audience import engagement, search
from nurture.core.audience.candidates import mark_hired, upsert_candidate
from nurture.core.audience.search import CandidateFilters
from nurture.core.compliance.suppressions import suppress
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import (
    Campaign,
    Candidate,
    Enrolment,
    EnrolmentStatus,
    Event,
    Message,
    Step,
)
from nurture.tasks.sending import close_sender
from nurture.workflows import candidates as candidate_actions
from tests.conftest import make_app

F = CandidateFilters


@pytest.fixture
def both(database_url: str, clock) -> Any:
    """The app on SQLite, then on PostgreSQL (for the SQL that differs between them)."""
    app = make_app(
        database_url, clock, REDIS_URL="redis://127.0.0.1:1/0", SMTP_URL="smtp://127.0.0.1:1"
    )
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def now_of(app: Flask) -> datetime:
    return app.extensions["nurture.clock"].now()


def person(app: Flask, email: str, **fields: Any) -> Candidate:
    """A candidate through the candidates service, then any field set directly."""
    data = {"email": email, **{k: v for k, v in fields.items() if k in SERVICE_FIELDS}}
    candidate, _ = upsert_candidate(db.session, data, now_of(app))
    for name, value in fields.items():
        if name == "engagement_score":  # the score wanted now, stored as points
            candidate.engagement_points = value * engagement.growth(now_of(app))
        elif name not in SERVICE_FIELDS:
            setattr(candidate, name, value)
    db.session.flush()
    return candidate


SERVICE_FIELDS = {
    "first_name",
    "last_name",
    "role",
    "stage",
    "skills",
    "tags",
    "source",
    "timezone",
    "recruiter_email",
}


def campaign(name: str, tag: str = "", status: str = "active", steps: int = 1) -> Campaign:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = Campaign(
        name=name,
        kind="drip",
        status=status,
        entry_type="tag" if tag else "manual",
        entry_value=tag,
        created_at=now,
        updated_at=now,
        steps=[
            Step(position=n, delay_seconds=3600, template="check_in", subject=f"{name} {n + 1}")
            for n in range(steps)
        ],
    )
    db.session.add(row)
    db.session.flush()
    return row


def message(
    candidate: Candidate, camp: Campaign, at: datetime, state: str = "sent", subject: str = "Hello"
) -> Message:
    row = Message(
        candidate_id=candidate.id,
        campaign_id=camp.id,
        step_id=camp.steps[0].id,
        state=state,
        subject=subject,
        queued_at=at,
        sent_at=at if state == "sent" else None,
    )
    db.session.add(row)
    db.session.flush()
    return row


def event(
    candidate: Candidate,
    kind: str,
    at: datetime,
    msg: Message | None = None,
    machine: bool = False,
    url: str = "",
) -> Event:
    row = Event(
        candidate_id=candidate.id,
        message_id=msg.id if msg else None,
        kind=kind,
        machine=machine,
        url=url,
        created_at=at,
    )
    db.session.add(row)
    db.session.flush()
    return row


def emails(app: Flask, filters: CandidateFilters, **kw: Any) -> list[str]:
    result = search.page(db.session, filters, now_of(app), **kw)
    return [row.candidate.email for row in result.rows]


# --- parsing the list's options ----------------------------------------------------------------


def test_options_are_parsed_and_bad_ones_reported_at_their_name() -> None:
    filters = F.from_args(
        {
            "q": "  maya   python ",
            "tag": " Backend",
            "status": "active",
            "sort": "name",
            "dir": "desc",
            "page": "3",
        }
    )
    assert filters == F(
        q="maya python", tag="backend", status="active", sort="name", direction="desc", page=3
    )
    assert F.from_args(filters.to_args()) == filters
    assert F().to_args() == {}
    assert F(sort="name", direction="asc").to_args() == {"sort": "name"}  # asc: its default
    assert F.from_args({"sort": "name"}).direction == "asc"
    assert filters.filter_args == {"q": "maya python", "tag": "backend", "status": "active"}
    # Column headers: a new column starts in its own direction, the current one flips.
    assert filters.sort_args("score")["sort"] == "score" and "dir" not in filters.sort_args("score")
    assert filters.sort_args("name") == {**filters.filter_args, "sort": "name"}  # desc -> asc
    assert F(sort="name", direction="asc").sort_args("name")["dir"] == "desc"

    with pytest.raises(ValidationError) as bad:
        F.from_args(
            {
                "status": "asleep",
                "sort": "shoe_size",
                "engagement": "x",
                "page": "0",
                "dir": "up",
                "q": "x" * 201,
            }
        )
    assert set(bad.value.fields) == {"status", "sort", "engagement", "page", "dir", "q"}
    assert "asleep" in bad.value.fields["status"]
    with pytest.raises(ValidationError):
        F.from_args({"page": "9" * 30})


# --- search and filters ------------------------------------------------------------------------


def test_search_matches_name_email_role_and_skills_in_any_case(both: Flask) -> None:
    person(
        both,
        "maya@example.org",
        first_name="Maya",
        last_name="Okafor",
        role="Backend Engineer",
        skills=["python", "postgresql"],
    )
    person(
        both,
        "jonas@example.org",
        first_name="Jonas",
        last_name="Lindqvist",
        role="Product Designer",
        skills=["figma"],
    )
    person(both, "kenji.okafor@corp.example", first_name="Kenji", role="SRE", skills=["go"])
    person(both, "under_score@example.org", first_name="100%", role="Data")

    def found(q: str) -> set[str]:
        return {e.split("@")[0] for e in emails(both, F(q=q))}

    assert found("okafor") == {"maya", "kenji.okafor"}  # a last name, and an address
    assert found("MAYA") == {"maya"}
    assert found("designer") == {"jonas"}
    assert found("FIGMA") == {"jonas"}
    assert found("maya python") == {"maya"}  # every word, anywhere
    assert found("maya figma") == set()
    assert found("corp.example") == {"kenji.okafor"}
    # LIKE wildcards typed by a person are taken literally.
    assert found("%") == {"under_score"}
    assert found("r_s") == {"under_score"}


def test_filters_by_tag_status_stage_and_source(app: Flask) -> None:
    person(app, "a@example.org", tags=["backend", "silver"], stage="onsite", source="ats")
    person(app, "b@example.org", tags=["backend"], stage="screen", source="referral")
    person(
        app,
        "c@example.org",
        tags=["design"],
        stage="onsite",
        source="referral",
        status="unsubscribed",
    )

    def found(**kw: Any) -> set[str]:
        return {e[0] for e in emails(app, F(**kw))}

    assert found(tag="backend") == {"a", "b"}
    assert found(tag="nope") == set()
    assert found(status="unsubscribed") == {"c"}
    assert found(stage="onsite") == {"a", "c"}
    assert found(source="referral") == {"b", "c"}
    assert found(tag="backend", source="referral") == {"b"}
    facets = search.facets(db.session, now_of(app))
    assert facets.tags == ["backend", "design", "silver"]
    assert facets.stages == ["onsite", "screen"] and facets.sources == ["ats", "referral"]


def test_engagement_filters_ignore_machine_opens(app: Flask) -> None:
    now = now_of(app)
    drip = campaign("Drip")
    recent, old, proxy, silent = (
        person(app, f"{n}@example.org") for n in ("recent", "old", "proxy", "silent")
    )
    for who in (recent, old, proxy, silent):
        message(who, drip, now - timedelta(days=90))
    event(recent, "click", now - timedelta(days=2), url="https://example.com/job")
    event(old, "open", now - timedelta(days=45))
    event(proxy, "open", now - timedelta(days=1), machine=True)  # a privacy proxy, not a person
    event(silent, "bounce", now - timedelta(days=1))
    # Events made here bypass tracking.record_event, which keeps the per-candidate summary.
    engagement.rebuild_summary(db.session)

    def found(rule: str) -> set[str]:
        return {e.split("@")[0] for e in emails(app, F(engagement=rule))}

    assert found("engaged_30d") == {"recent"}
    assert found("not_engaged_30d") == {"old", "proxy", "silent"}
    assert found("never_opened") == {"proxy", "silent"}


# --- sorting -----------------------------------------------------------------------------------


def test_each_sort_in_both_directions(both: Flask, clock) -> None:
    app = both
    now = now_of(app)
    drip = campaign("Drip")
    rows = [
        ("zoe@example.org", "Zoë", "Adams", 10.0),
        ("ana@example.org", "ana", "Lima", 75.5),
        ("nobody@example.org", "", "", 40.0),
        ("bo@example.org", "Bo", "Chen", 5.0),
    ]
    made = []
    for email, first, last, score in rows:
        clock.advance(timedelta(minutes=1))
        made.append(
            person(
                app,
                email,
                first_name=first,
                last_name=last,
                engagement_score=score,
                created_at=clock.now(),
            )
        )
    msg = message(made[0], drip, now)
    event(made[0], "open", now - timedelta(days=400), msg)  # Zoë: over a year ago
    event(made[3], "click", now - timedelta(days=3), msg)  # Bo: lately
    event(made[1], "open", now - timedelta(days=100), msg)  # Ana: months ago
    event(made[2], "open", now - timedelta(hours=1), msg, machine=True)  # a machine: not activity
    engagement.rebuild_summary(db.session)
    db.session.expire_all()

    def order(sort: str, direction: str) -> list[str]:
        return [e.split("@")[0] for e in emails(app, F(sort=sort, direction=direction))]

    # Case does not matter; people without a name come last either way.
    assert order("name", "asc") == ["ana", "bo", "zoe", "nobody"]
    assert order("name", "desc") == ["zoe", "bo", "ana", "nobody"]
    assert order("created", "desc") == ["bo", "nobody", "ana", "zoe"]
    assert order("created", "asc") == ["zoe", "ana", "nobody", "bo"]
    assert order("score", "desc") == ["ana", "nobody", "zoe", "bo"]
    assert order("score", "asc") == ["bo", "zoe", "nobody", "ana"]
    # Never active (machine opens only) last, both ways.
    assert order("activity", "desc") == ["bo", "ana", "zoe", "nobody"]
    assert order("activity", "asc") == ["zoe", "ana", "bo", "nobody"]
    result = search.page(db.session, F(sort="activity"), now)
    assert [r.last_activity for r in result.rows] == [
        now - timedelta(days=3),
        now - timedelta(days=100),
        now - timedelta(days=400),
        None,
    ]
    # A reply is activity too: Zoë wrote back an hour ago.
    event(made[0], "reply", now - timedelta(hours=1), msg)
    engagement.rebuild_summary(db.session)
    db.session.expire_all()
    assert order("activity", "desc") == ["zoe", "bo", "ana", "nobody"]


# --- paging and counting -----------------------------------------------------------------------


def test_pages_know_their_neighbours_and_count_no_further_than_asked(app: Flask) -> None:
    for n in range(7):
        person(app, f"p{n}@example.org", stage="screen")
    now = now_of(app)
    first = search.page(db.session, F(), now, per_page=3)
    assert (first.first, first.last, first.total, first.has_next) == (1, 3, 7, True)
    assert first.summary == "1–3 of 7" and first.pages == 3
    last = search.page(db.session, F(page=3), now, per_page=3)
    assert [r.candidate.email for r in last.rows] == ["p0@example.org"]
    assert not last.has_next and last.summary == "7–7 of 7"
    beyond = search.page(db.session, F(page=9), now, per_page=3)
    assert beyond.rows == [] and beyond.summary == "No candidates on page 9"

    # A filtered list stops counting at the cap, yet a deep page still says where it is.
    capped = search.page(db.session, F(stage="screen"), now, per_page=2, count_cap=3)
    assert (capped.total, capped.total_capped, capped.summary) == (3, True, "1–2 of 3+")
    assert capped.pages is None
    deep = search.page(db.session, F(stage="screen", page=3), now, per_page=2, count_cap=3)
    assert deep.summary == "5–6 of 6+"
    assert search.count_matching(db.session, F(stage="screen"), now, None) == (7, False)


def test_big_tables_cache_the_stage_and_source_menus_for_a_while(
    app: Flask, clock, monkeypatch
) -> None:
    monkeypatch.setattr(search, "FACETS_FRESH_BELOW", 1)
    monkeypatch.setattr(search, "_facet_cache", {})
    person(app, "a@example.org", stage="screen")
    assert search.facets(db.session, clock.now()).stages == ["screen"]
    person(app, "b@example.org", stage="onsite", tags=["new"])
    cached = search.facets(db.session, clock.now())
    assert cached.stages == ["screen"] and cached.tags == ["new"]  # tags are always fresh
    clock.advance(search.FACETS_TTL)
    assert search.facets(db.session, clock.now()).stages == ["onsite", "screen"]


# --- bulk tag ----------------------------------------------------------------------------------


def test_bulk_tag_tags_every_match_in_sql_and_enrols_the_newly_tagged(both: Flask) -> None:
    now = now_of(both)
    pool = campaign("Backend pool", tag="backend-pool", steps=2)
    campaign("Paused pool", tag="backend-pool", status="paused")
    for n in range(5):
        person(both, f"dev{n}@example.org", role="Backend Engineer", tags=["keep"])
    person(both, "dev-tagged@example.org", role="Backend Engineer", tags=["backend-pool"])
    hired = person(both, "dev-hired@example.org", role="Backend Engineer")
    mark_hired(db.session, hired, now)
    erased = person(both, "dev-erased@example.org", role="Backend Engineer", status="erased")
    person(both, "designer@example.org", role="Designer")
    db.session.commit()

    result = candidate_actions.bulk_tag(db.session, F(q="backend"), "  Backend-Pool ", now)
    db.session.commit()
    # Five new, the hired one too; the one already tagged and the erased one are not counted.
    assert (result.tag, result.tagged) == ("backend-pool", 6)
    # The active tag-entry campaign enrols everyone carrying the tag who may be mailed.
    assert result.enrolled == {"Backend pool": 6}
    tagged = set(emails(both, F(tag="backend-pool")))
    assert len(tagged) == 7 and "designer@example.org" not in tagged
    assert erased.email not in tagged
    assert set(db.session.get(Candidate, hired.id).tag_names) == {"backend-pool"}
    assert set(emails(both, F(tag="keep"))) == {f"dev{n}@example.org" for n in range(5)}
    enrolled = db.session.scalar(
        select(func.count()).where(
            Enrolment.campaign_id == pool.id, Enrolment.status == EnrolmentStatus.ACTIVE
        )
    )
    assert enrolled == 6  # the hired candidate is not mailed
    # Again: nothing new to tag, nobody enrolled twice.
    again = candidate_actions.bulk_tag(db.session, F(q="backend"), "backend-pool", now)
    assert (again.tagged, again.enrolled) == (0, {"Backend pool": 0})

    with pytest.raises(ValidationError) as bad:
        candidate_actions.bulk_tag(db.session, F(), "   ", now)
    assert "tag" in bad.value.fields
    with pytest.raises(ValidationError):
        candidate_actions.bulk_tag(db.session, F(), "x" * 101, now)


# --- export ------------------------------------------------------------------------------------


def read_csv(app: Flask, filters: CandidateFilters, chunk: int = 1000) -> tuple[str, list]:
    text = "".join(
        search.csv_lines(search.export_rows(db.session, filters, now_of(app), chunk=chunk))
    )
    return text, list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def test_export_neutralises_formulas_and_starts_with_a_bom(app: Flask) -> None:
    evil = person(
        app,
        "evil@example.org",
        first_name='=HYPERLINK("http://evil.example","click")',
        last_name="+1+1",
        role="-2",
        stage="@SUM(A1)",
        skills=["=cmd|' /c calc'!a0"],
        tags=["normal"],
    )
    evil.source = "\tx"  # the candidates service trims; an import from elsewhere might not
    person(
        app,
        "fine@example.org",
        first_name="Zoë",
        last_name="Nguyễn",
        role="a=b",
        tags=["b", "a"],
        skills=["go", "python"],
        engagement_score=-1.5,
    )
    text, rows = read_csv(app, F())
    assert text.startswith("\ufeffemail,first_name,")
    assert rows[0] == search.EXPORT_COLUMNS
    by_email = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    evil = by_email["evil@example.org"]
    assert evil["first_name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert evil["last_name"] == "'+1+1" and evil["role"] == "'-2"
    assert evil["stage"] == "'@SUM(A1)" and evil["source"] == "'\tx"
    assert evil["skills"] == "'=cmd|' /c calc'!a0"
    fine = by_email["fine@example.org"]
    assert (fine["first_name"], fine["last_name"], fine["role"]) == ("Zoë", "Nguyễn", "a=b")
    assert fine["tags"] == "a;b" and fine["skills"] == "go;python"
    assert fine["engagement_score"] == "-1.5"  # a number, not text: left alone
    assert fine["created_at"].startswith("2026-03-02T09:00:00")
    assert search.neutralise("\rcmd") == "'\rcmd" and search.neutralise("plain") == "plain"


def test_export_reads_in_chunks_and_applies_the_filters(app: Flask) -> None:
    for n in range(7):
        person(app, f"p{n}@example.org", tags=["even" if n % 2 == 0 else "odd"])
    _, rows = read_csv(app, F(), chunk=2)
    assert [row[0] for row in rows[1:]] == [f"p{n}@example.org" for n in range(7)]
    _, rows = read_csv(app, F(tag="odd"), chunk=2)
    assert [row[0] for row in rows[1:]] == ["p1@example.org", "p3@example.org", "p5@example.org"]


# --- one candidate -----------------------------------------------------------------------------


def test_timeline_has_every_message_and_event_in_time_order(both: Flask) -> None:
    now = now_of(both)
    drip = campaign("Silver medalists")
    who = person(both, "maya@example.org")
    first = message(who, drip, now - timedelta(days=3), subject="Thank you, Maya")
    event(who, "open", now - timedelta(days=3), first, machine=True)
    event(who, "open", now - timedelta(days=2), first)
    event(who, "click", now - timedelta(days=2, hours=-1), first, url="https://example.com/j")
    reply = event(who, "reply", now - timedelta(days=1, hours=2), first, url="mid:abc@mail")
    reply.value = "Re: Thank you, Maya"
    message(who, drip, now - timedelta(days=1), state="failed", subject="Check-in")
    event(who, "unsubscribe", now)
    items = search.timeline(db.session, who.id).items
    assert [(i.source, i.kind) for i in items] == [
        ("message", "sent"),
        ("event", "open"),
        ("event", "open"),
        ("event", "click"),
        ("event", "reply"),
        ("message", "failed"),
        ("event", "unsubscribe"),
    ]
    assert items[0].subject == "Thank you, Maya" and items[0].campaign == "Silver medalists"
    assert items[1].machine and not items[2].machine
    assert items[3].link == "https://example.com/j" and items[3].subject == "Thank you, Maya"
    # A reply keeps where it came from (a mid: URL), which is no link to follow.
    assert (items[4].value, items[4].url, items[4].link) == (
        "Re: Thank you, Maya",
        "mid:abc@mail",
        "",
    )
    assert items[6].subject == "" and items[0].at == now - timedelta(days=3)

    latest = search.timeline(db.session, who.id, limit=2)
    assert [i.kind for i in latest.items] == ["failed", "unsubscribe"]
    assert (latest.total, latest.earlier) == (7, 5)


def test_enrolling_by_hand_says_why_it_cannot(app: Flask) -> None:
    now = now_of(app)
    drip, paused = campaign("Drip"), campaign("Paused", status="paused")
    who = person(app, "a@example.org")
    assert candidate_actions.enrol_by_hand(db.session, who, drip, now).campaign_id == drip.id

    def why(candidate: Candidate, camp: Campaign) -> str:
        with pytest.raises(ValidationError) as refused:
            candidate_actions.enrol_by_hand(db.session, candidate, camp, now)
        return refused.value.fields["campaign_id"]

    assert "already enrolled" in why(who, drip)
    assert "paused, not active" in why(who, paused)
    suppressed = person(app, "gone@example.org")
    suppress(db.session, suppressed.email, "unsubscribed", now)
    assert "suppressed (unsubscribed)" in why(suppressed, drip)
    hired = person(app, "hired@example.org")
    mark_hired(db.session, hired, now)
    assert "they are hired" in why(hired, drip)


def test_tags_added_by_hand_enrol_and_can_be_removed(app: Flask) -> None:
    now = now_of(app)
    campaign("Backend", tag="backend")
    who = person(app, "a@example.org", tags=["old"])
    added, entered = candidate_actions.add_tags(db.session, who, "Backend, old, ,new", now)
    assert (added, entered) == (["backend", "new"], 1)
    assert who.tag_names == ["backend", "new", "old"]
    assert candidate_actions.add_tags(db.session, who, "backend", now) == ([], 0)
    with pytest.raises(ValidationError):
        candidate_actions.add_tags(db.session, who, " , ", now)
    tag_id = next(t.id for t in who.tags if t.name == "old")
    assert candidate_actions.remove_tag(db.session, who, tag_id, now) == "old"
    assert candidate_actions.remove_tag(db.session, who, tag_id, now) is None
    assert who.tag_names == ["backend", "new"]


def test_profile_edits_go_through_the_service_and_all_or_nothing(app: Flask) -> None:
    now = now_of(app)
    who = person(
        app,
        "a@example.org",
        first_name="Ana",
        timezone="Europe/Lisbon",
        recruiter_email="jo@example.com",
    )
    db.session.commit()
    values = search.profile_values(who)
    values.update(
        first_name="Ana Maria",
        timezone="Mars/Olympus",
        consent_at="yesterday",
        attributes="{not json",
        recruiter_email="not an address",
    )
    with pytest.raises(ValidationError) as bad:
        candidate_actions.update_profile(db.session, who, values, now)
    db.session.rollback()
    assert set(bad.value.fields) == {"timezone", "consent_at", "attributes", "recruiter_email"}
    db.session.refresh(who)
    assert (who.first_name, who.timezone) == ("Ana", "Europe/Lisbon")  # nothing half-saved

    values.update(
        timezone="Europe/Paris",
        consent_at="2026-02-27T10:00:00+01:00",
        attributes='{"notice": "1 month"}',
        recruiter_email="",
        skills="Go, python",
        consent_basis="consent",
    )
    candidate_actions.update_profile(db.session, who, values, now)
    db.session.commit()
    assert (who.first_name, who.timezone, who.recruiter_email) == ("Ana Maria", "Europe/Paris", "")
    assert who.skills == ["go", "python"] and who.attributes == {"notice": "1 month"}
    assert who.consent_at.isoformat() == "2026-02-27T09:00:00+00:00"
    assert who.consent_basis == "consent"
    with pytest.raises(ValidationError) as bad:
        candidate_actions.update_profile(db.session, who, {**values, "attributes": "[1, 2]"}, now)
    assert bad.value.fields == {"attributes": "must be an object"}
