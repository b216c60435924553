"""A job alert end to end: API → review → approval → scheduler → real RQ worker → real SMTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.core.compliance import preferences
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Message, MessageState
from nurture.tasks import get_queue
from nurture.tasks.scheduling import run_tick
from nurture.tasks.worker import SendWorker
from tests.conftest import ats_post, auth_headers, running_app

JOB = {
    "title": "Staff Data Engineer",
    "role_family": "data",
    "skills": ["python", "sql", "airflow"],
    "location": "Berlin, Germany",
    "url": "https://careers.example.com/jobs/staff-data-engineer",
    "summary": "Own the pipelines that feed our matching.",
}
PEOPLE = {
    # email: (skills, extra fields)
    "fit@example.org": (["python", "sql", "airflow"], {"role": "Data Engineer"}),
    "removed@example.org": (["python", "sql"], {}),
    "changes-mind@example.org": (["sql"], {}),
    "opted-out@example.org": (["python", "sql", "airflow"], {}),
    "hired@example.org": (["python"], {}),
    "no-fit@example.org": (["figma"], {}),
}


@pytest.fixture
def system(sqlite_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def work(app: Flask) -> None:
    """The scheduler's pass, then a real RQ worker in burst mode until the queue is empty."""
    run_tick(app)
    queue = get_queue(app)
    SendWorker([queue], connection=queue.connection).work(burst=True)


def turn_off_job_alerts(app: Flask, email: str) -> None:
    """The candidate unticks job alerts in the preference centre."""
    candidate = db.session.scalar(select(Candidate).where(Candidate.email == email))
    now = app.extensions["nurture.clock"].now()
    preferences.set_topics(candidate, {"checkins", "newsletter"}, now)
    db.session.commit()


def test_a_job_alert_reaches_only_reviewed_matching_opted_in_candidates(
    system: Flask, clock, smtp: SmtpCapture
) -> None:
    client = system.test_client()
    editor = auth_headers(system, "editor")
    ids = {}
    for email, (skills, extra) in PEOPLE.items():
        answer = client.post(
            "/api/v1/candidates",
            headers=editor,
            json={
                "email": email,
                "first_name": email[:3].title(),
                "skills": skills,
                "location": "Berlin",
                **extra,
            },
        )
        ids[email] = answer.json["id"]
    turn_off_job_alerts(system, "opted-out@example.org")
    hired = {"type": "candidate.hired", "candidate": {"email": "hired@example.org"}}
    assert ats_post(client, hired).status_code == 200

    created = client.post("/api/v1/jobs", json=JOB, headers=editor)
    assert created.status_code == 201, created.json
    job = created.json["id"]
    assert created.json["match_count"] == 3
    listing = client.get(f"/api/v1/jobs/{job}/matches", headers=editor).json
    assert [item["email"] for item in listing["items"]] == [
        "fit@example.org",
        "removed@example.org",
        "changes-mind@example.org",
    ]
    assert listing["items"][0]["reasons"][:2] == [
        "3 of 3 skills: airflow, python, sql",
        "role: Data Engineer (data)",
    ]

    # The recruiter removes one person, then approves; nothing goes out before approval.
    work(system)
    assert smtp.messages == []
    removed = ids["removed@example.org"]
    assert client.post(f"/api/v1/jobs/{job}/matches/{removed}/exclude", headers=editor).json == {
        "candidate_id": removed,
        "excluded": True,
    }
    approved = client.post(f"/api/v1/jobs/{job}/approve", headers=editor)
    assert approved.status_code == 200 and approved.json["enrolled"] == 2

    # Between approval and sending, one of them turns job alerts off.
    turn_off_job_alerts(system, "changes-mind@example.org")
    clock.advance(timedelta(seconds=1))
    work(system)
    assert [m.rcpt_tos for m in smtp.messages] == [["fit@example.org"]]
    mail = smtp.messages[0].as_email()
    assert "Staff Data Engineer" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert JOB["url"] in text and "Own the pipelines" in text
    assert "Staff Data Engineer" in mail.get_body(("html",)).get_content()
    skipped = db.session.scalar(
        select(Message).where(Message.candidate_id == ids["changes-mind@example.org"])
    )
    assert skipped is not None and skipped.state == MessageState.SKIPPED

    # Approving twice sends once.
    again = client.post(f"/api/v1/jobs/{job}/approve", headers=editor)
    assert again.json["enrolled"] == 0
    clock.advance(timedelta(days=1))
    work(system)
    assert len(smtp.messages) == 1
    stats = client.get(f"/api/v1/jobs/{job}", headers=editor).json
    assert (stats["sent"], stats["excluded"], stats["pending"]) == (1, 1, 0)


def test_job_api_errors_are_json_and_name_the_field(system: Flask) -> None:
    client = system.test_client()
    editor, viewer = auth_headers(system, "editor"), auth_headers(system, "viewer")
    bad = client.post(
        "/api/v1/jobs", json={**JOB, "url": "not a link", "title": ""}, headers=editor
    )
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"url", "title"}
    assert client.post("/api/v1/jobs", json=JOB, headers=viewer).status_code == 403
    assert client.post("/api/v1/jobs", json=JOB).status_code == 401
    assert client.get("/api/v1/jobs/999/matches", headers=viewer).status_code == 404
    job = client.post("/api/v1/jobs", json=JOB, headers=editor).json["id"]
    assert (
        client.post(f"/api/v1/jobs/{job}/matches/12345/exclude", headers=editor).status_code == 404
    )
    assert client.post(f"/api/v1/jobs/{job}/approve", headers=viewer).status_code == 403
    unknown = client.post(
        f"/api/v1/jobs/{job}/matches", json={"email": "x@example.org"}, headers=editor
    )
    assert unknown.status_code == 422 and "email" in unknown.json["error"]["fields"]
