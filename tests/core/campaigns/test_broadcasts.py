"""Broadcasts: one mail per audience member, once, now, later or at each candidate's local hour."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from nurture.core.audience.segments import save_segment
from nurture.core.campaigns.broadcasts import run_broadcasts, send_broadcast
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment, Message, Tag
from nurture.models.candidates import candidate_tags
from nurture.tasks import get_queue
from nurture.tasks.scheduling import run_tick
from tests.conftest import auth_headers, running_app

NEWSLETTER = {"name": "March newsletter", "template": "newsletter", "subject": "News"}


@pytest.fixture
def system(database_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(database_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


@pytest.fixture
def sqlite_system(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def now() -> datetime:
    from flask import current_app

    return current_app.extensions["nurture.clock"].now()


def people(count: int, tag: str = "", start: int = 0, **fields: Any) -> None:
    """``count`` candidates in bulk (two statements), tagged ``tag`` when given."""
    at = now()
    db.session.execute(
        insert(Candidate),
        [
            {
                "email": f"p{n}@example.org",
                "first_name": f"P{n}",
                "created_at": at,
                "updated_at": at,
                **fields,
            }
            for n in range(start, start + count)
        ],
    )
    if tag:
        tag_row = db.session.scalar(select(Tag).where(Tag.name == tag)) or Tag(name=tag)
        db.session.add(tag_row)
        db.session.flush()
        emails = [f"p{n}@example.org" for n in range(start, start + count)]
        ids = db.session.scalars(select(Candidate.id).where(Candidate.email.in_(emails))).all()
        db.session.execute(
            insert(candidate_tags), [{"candidate_id": i, "tag_id": tag_row.id} for i in ids]
        )
    db.session.commit()


def broadcast(app: Flask, **fields: Any):
    return app.test_client().post(
        "/api/v1/broadcasts", json={**NEWSLETTER, **fields}, headers=auth_headers(app, "editor")
    )


def work(app: Flask) -> None:
    """A real RQ worker in burst mode, until the queue is empty."""
    from nurture.tasks.worker import SendWorker

    queue = get_queue(app)
    SendWorker([queue], connection=queue.connection).work(burst=True)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_broadcast_to_a_segment_of_500_sends_500_mails_once_each(
    system: Flask, smtp: SmtpCapture
) -> None:
    people(500, tag="talent-network", role="Designer")
    people(20, start=1000, tag="talent-network", role="Engineer")  # not in the segment
    people(20, start=2000, role="Designer")  # nor these
    rules = {"all": [{"tag": "talent-network"}, {"field": "role", "op": "eq", "value": "Designer"}]}
    segment = save_segment(db.session, "Designers in the network", rules, now())
    db.session.commit()
    answer = broadcast(system, audience={"segment_id": segment.id})
    assert answer.status_code == 201, answer.json
    assert answer.json["status"] == "active" and answer.json["kind"] == "broadcast"
    assert answer.json["progress"]["waiting_audience"] == 500
    assert run_tick(system).created == 500
    # The pass again, and the broadcast pass on its own: nothing more.
    assert run_tick(system).created == 0
    assert run_broadcasts(db.session, now()) == 0
    work(system)
    smtp.wait_for(500)
    recipients = [m.rcpt_tos[0] for m in smtp.messages]
    assert len(recipients) == 500 and len(set(recipients)) == 500
    assert run_tick(system).created == 0
    work(system)
    assert len(smtp.messages) == 500
    progress = (
        system.test_client()
        .get(f"/api/v1/broadcasts/{answer.json['id']}", headers=auth_headers(system, "viewer"))
        .json["progress"]
    )
    assert progress["messages"]["sent"] == 500 and progress["total"] == 500
    assert progress["sent_at"] is not None and progress["waiting_audience"] is None
    # Each enrolment is complete once its one mail went out.
    assert count(Enrolment, Enrolment.status == "completed") == 500


def test_two_passes_at_once_create_each_message_once(system: Flask) -> None:
    people(300, tag="pool")
    campaign_id = broadcast(system, audience={"tag": "pool"}).json["id"]
    barrier = threading.Barrier(2)
    created: list[int] = []
    errors: list[BaseException] = []

    engine = db.engine

    def one_pass() -> None:
        with Session(engine) as session:
            try:
                campaign = session.get(Campaign, campaign_id)
                barrier.wait()
                created.append(send_broadcast(session, campaign, now_at))
                session.commit()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

    now_at = now()
    threads = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # On SQLite the loser may be told the database is busy: it then created nothing.
    assert all("locked" in str(exc) for exc in errors), errors
    assert sum(created) == 300
    assert count(Message) == 300 and count(Enrolment) == 300


def test_a_scheduled_broadcast_to_a_segment_waits_for_its_time(
    sqlite_system: Flask, clock, smtp: SmtpCapture
) -> None:
    people(30, role="Designer")
    people(5, start=100, role="Engineer")
    segment = save_segment(
        db.session, "Designers", {"field": "role", "op": "eq", "value": "Designer"}, now()
    )
    db.session.commit()
    at = clock.now() + timedelta(days=2)
    answer = broadcast(
        sqlite_system, audience={"segment_id": segment.id}, scheduled_at=at.isoformat()
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["entry"] == {"segment_id": segment.id}
    assert answer.json["scheduled_at"] == at.isoformat()
    clock.advance(timedelta(days=2) - timedelta(minutes=1))
    assert run_tick(sqlite_system).created == 0
    clock.advance(timedelta(minutes=1))
    assert run_tick(sqlite_system).created == 30
    work(sqlite_system)
    smtp.wait_for(30)
    assert len(smtp.messages) == 30


def test_at_local_time_each_zone_gets_it_at_its_own_hour(sqlite_system: Flask, clock) -> None:
    clock.set(datetime(2026, 3, 9, 12, 0, tzinfo=UTC))
    for n, tz in enumerate(["Asia/Tokyo", "Europe/London", "America/New_York", "", "Bad/Zone"]):
        people(1, tag="all", start=n, timezone=tz)
    answer = broadcast(
        sqlite_system, audience={"tag": "all"}, scheduled_at="2026-03-10T09:00", local_time=True
    )
    assert answer.json["scheduled_at"] == "2026-03-10T09:00:00" and answer.json["local_time"]

    def sent_to() -> list[str]:
        db.session.expire_all()
        return sorted(db.session.scalars(select(Candidate.timezone).join(Message)).all())

    # 09:00 in Tokyo is 00:00 UTC; London is on GMT (09:00 UTC); New York is already on EDT
    # (13:00 UTC); no zone, or an unknown one: the team's zone, UTC.
    for hour, expected in [
        (datetime(2026, 3, 9, 23, 59), []),
        (datetime(2026, 3, 10, 0, 0), ["Asia/Tokyo"]),
        (datetime(2026, 3, 10, 8, 59), ["Asia/Tokyo"]),
        (datetime(2026, 3, 10, 9, 0), ["", "Asia/Tokyo", "Bad/Zone", "Europe/London"]),
        (
            datetime(2026, 3, 10, 13, 0),
            ["", "America/New_York", "Asia/Tokyo", "Bad/Zone", "Europe/London"],
        ),
    ]:
        clock.set(hour.replace(tzinfo=UTC))
        run_tick(sqlite_system)
        assert sent_to() == expected, hour
    # Once the last zone's hour has passed the audience closes: someone tagged later does not
    # get last week's news.
    clock.set(datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    run_tick(sqlite_system)
    people(1, tag="all", start=50)
    clock.advance(timedelta(days=1))
    run_tick(sqlite_system)
    assert count(Message) == 5


def test_topics_and_status_narrow_the_audience(sqlite_system: Flask) -> None:
    people(3, tag="pool")
    first, second, third = db.session.scalars(select(Candidate).order_by(Candidate.id)).all()
    first.topics = {"newsletter": False}
    second.status = "unsubscribed"
    third.topics = {"newsletter": True, "checkins": False}
    db.session.commit()
    answer = broadcast(sqlite_system, audience={"tag": "pool"})
    assert answer.json["topic"] == "newsletter"
    assert answer.json["progress"]["waiting_audience"] == 1
    assert run_tick(sqlite_system).created == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "audience"),
        ({"audience": {"segment_id": 12345}}, "audience.segment_id"),
        ({"audience": {"ats_event": "candidate.rejected"}}, "audience"),
        ({"audience": {"tag": "x"}, "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"audience": {"tag": "x"}, "scheduled_at": "2026-03-10T09:00"}, "scheduled_at"),
        ({"audience": {"tag": "x"}, "template": "no_such_template"}, "template"),
        ({"audience": {"tag": "x"}, "local_time": "yes"}, "local_time"),
        ({"audience": {"tag": "x"}, "colour": "red"}, "colour"),
    ],
)
def test_bad_broadcasts_are_422_naming_the_field(sqlite_system: Flask, body, field) -> None:
    answer = broadcast(sqlite_system, **body)
    if "audience" not in body:
        answer = sqlite_system.test_client().post(
            "/api/v1/broadcasts",
            json={"name": "x", "template": "newsletter"},
            headers=auth_headers(sqlite_system, "editor"),
        )
    assert answer.status_code == 422, answer.json
    assert field in answer.json["error"]["fields"], answer.json
    assert count(Campaign) == 0


def test_broadcast_routes_need_roles_and_know_only_broadcasts(sqlite_system: Flask) -> None:
    client = sqlite_system.test_client()
    viewer = auth_headers(sqlite_system, "viewer")
    draft = broadcast(sqlite_system, audience={"tag": "x"}, activate=False)
    assert draft.json["status"] == "draft"
    assert run_tick(sqlite_system).created == 0
    drip = client.post(
        "/api/v1/campaigns",
        json={"name": "d", "steps": [{"template": "rejection_followup"}]},
        headers=auth_headers(sqlite_system, "editor"),
    ).json["id"]
    assert client.post("/api/v1/broadcasts", json=NEWSLETTER, headers=viewer).status_code == 403
    assert client.get("/api/v1/broadcasts/999", headers=viewer).status_code == 404
    assert client.get(f"/api/v1/broadcasts/{drip}", headers=viewer).status_code == 404
