"""Feedback, both ways, by API on both databases: a step that needs the recruiter's note holds a
candidate's mail (not sent, the reason shown) until their strengths are written; a rating link
in the feedback mail leads to one optional question whose answer is stored with the stage and
rejection reason, summed up per stage and reason, and removed with an erasure."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.extensions import db
from nurture.models import HELD_FOR_STRENGTHS, Candidate, FeedbackAnswer, Message, MessageState
from nurture.tasks.scheduling import run_tick
from nurture.tasks.sending import close_sender
from tests.conftest import ats_post, auth_headers, make_app
from tests.support.workers import drain

BROWSER = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"}


@pytest.fixture
def system(database_url, clock, redis_url, smtp) -> Iterator[Flask]:
    app = make_app(database_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, FREQUENCY_CAP={})
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def _work(app: Flask) -> None:
    run_tick(app)
    drain(app)


def _body(mail, kind: str) -> str:  # noqa: ANN001
    return mail.as_email().get_body(preferencelist=(kind,)).get_content()


def _to(mails, address: str):  # noqa: ANN001, ANN202
    return [m for m in mails if m.as_email()["To"] == address]


def test_a_note_is_required_before_the_follow_up_and_the_answer_reaches_the_admin(
    system: Flask, clock, smtp
) -> None:
    client = system.test_client()
    editor, viewer, admin = (auth_headers(system, r) for r in ("editor", "viewer", "admin"))
    created = client.post(
        "/api/v1/campaigns",
        json={
            "name": "Personal follow-up",
            "entry": {"ats_event": "candidate.rejected"},
            "steps": [
                {"delay": "PT0S", "template": "rejection_followup", "require_strengths": True},
                {"delay": "P1D", "template": "feedback_request"},
            ],
        },
        headers=editor,
    )
    assert created.status_code == 201, created.json
    campaign = created.json["id"]
    steps = client.get(f"/api/v1/campaigns/{campaign}", headers=viewer).json["steps"]
    assert [s["require_strengths"] for s in steps] == [True, False]
    bad = client.post(
        "/api/v1/campaigns",
        json={"name": "x", "steps": [{"template": "rejection_followup", "require_strengths": "y"}]},
        headers=editor,
    )
    assert bad.status_code == 422 and "steps[0].require_strengths" in bad.json["error"]["fields"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)

    ana = {
        "email": "ana@example.org",
        "first_name": "Ana",
        "stage": "onsite",
        "rejection_reason": "experience",
        "strengths": "Your API design review was superb.",
    }
    bo = {"email": "bo@example.org", "first_name": "Bo", "stage": "phone screen",
          "rejection_reason": "timing", "recruiter_name": "Jordan Lee",
          "recruiter_email": "jordan@acme.example.com"}  # fmt: skip
    for person in (ana, bo):
        assert ats_post(client, {"type": "candidate.rejected", "candidate": person})
    _work(system)
    [first] = smtp.wait_for(1)
    assert first.as_email()["To"] == "ana@example.org"
    assert "Your API design review was superb." in _body(first, "plain")

    # Bo's mail is held, not sent and not skipped: the reason is on his record and the list.
    held = db.session.scalar(
        select(Message).join(Candidate).where(Candidate.email == "bo@example.org")
    )
    assert (held.state, held.error) == (MessageState.QUEUED, HELD_FOR_STRENGTHS)
    timeline = client.get(f"/api/v1/candidates/{held.candidate_id}", headers=viewer).json
    assert [i["error"] for i in timeline["timeline"]] == [HELD_FOR_STRENGTHS]
    missing = client.get("/api/v1/feedback/missing-strengths", headers=viewer).json
    assert missing["count"] == 1
    [row] = missing["candidates"]
    assert (row["email"], row["held"], row["step"], row["campaign"]) == (
        "bo@example.org", True, 1, "Personal follow-up",
    )  # fmt: skip
    assert row["recruiter"] == "Jordan Lee"
    clock.advance(timedelta(hours=2))  # past the re-check: looked at again, held again
    _work(system)
    assert len(smtp.messages) == 1

    # The recruiter writes the note: the mail goes at the next pass, quoting it.
    saved = client.post(
        "/api/v1/candidates",
        json={**bo, "strengths": "You asked the sharpest questions of the week."},
        headers=editor,
    )
    assert saved.status_code == 200
    _work(system)
    [second] = _to(smtp.wait_for(2), "bo@example.org")
    assert "You asked the sharpest questions of the week." in _body(second, "plain")
    assert client.get("/api/v1/feedback/missing-strengths", headers=viewer).json["count"] == 0

    # A day later the feedback mail: its rating links lead to the question.
    clock.advance(timedelta(days=1))
    _work(system)
    mails = smtp.wait_for(4)
    [ana_ask] = _to(mails[2:], "ana@example.org")
    [bo_ask] = _to(mails[2:], "bo@example.org")
    assert "what could we have done better?" in _body(ana_ask, "plain")
    links = [unescape(u) for u in re.findall(r'href="([^"]+/r/[^"]+)"', _body(ana_ask, "html"))]
    assert len(links) == 5
    base = system.config["BASE_URL"]
    poor = links[-2].replace(base, "")  # "2 Poor" (the list runs 5, 4, 3, 2, 1)
    page = client.get(poor, headers=BROWSER)
    assert page.status_code == 200
    assert "2 out of 5" in page.text and "What could we have done better?" in page.text
    form_token = re.search(r'name="form_token" value="([^"]+)"', page.text)[1]
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)[1]

    # Bad answers are named and change nothing; a forged form is refused.
    empty = client.post(action, data={"form_token": form_token, "answer": "   "}, headers=BROWSER)
    assert empty.status_code == 422 and "write a few words" in empty.text
    long = client.post(action, data={"form_token": form_token, "answer": "x" * 2001})
    assert long.status_code == 422 and "at most 2000 characters" in long.text
    forged = client.post(action, data={"form_token": "nope", "answer": "hi"}, headers=BROWSER)
    assert forged.status_code == 400
    assert db.session.scalar(select(FeedbackAnswer.answer)) == ""
    words = "Tell people sooner.\nThe panel ran 40 minutes late."
    answered = client.post(action, data={"form_token": form_token, "answer": words})
    assert answered.status_code == 303 and answered.headers["Location"].endswith("done=1")
    assert "your answer reached the team" in client.get(answered.headers["Location"]).text

    bo_links = re.findall(r"(https?://\S+/r/\S+)", _body(bo_ask, "plain"))
    assert client.get(bo_links[1].replace(base, ""), headers=BROWSER).status_code == 200  # 4
    scanner = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda link scanner)"}
    client.get(bo_links[4].replace(base, ""), headers=scanner)  # a scanner's hit counts nothing

    report = client.get("/api/v1/feedback", headers=viewer).json
    assert report["question"] == "What could we have done better?"
    stages = {g["name"]: g for g in report["by_stage"]}
    assert stages["onsite"] == {"name": "onsite", "ratings": 1, "average": 2.0, "answers": 1}
    assert stages["phone screen"] == {
        "name": "phone screen", "ratings": 1, "average": 4.0, "answers": 0,
    }  # fmt: skip
    reasons = {g["name"]: g["answers"] for g in report["by_rejection_reason"]}
    assert reasons == {"experience": 1, "timing": 0}
    [answer] = report["answers"]["items"]
    assert (answer["answer"], answer["stage"], answer["rejection_reason"], answer["rating"]) == (
        words, "onsite", "experience", 2,
    )  # fmt: skip
    assert answer["campaign"] == "Personal follow-up"
    only = client.get("/api/v1/feedback?stage=phone%20screen", headers=viewer).json
    assert only["answers"]["count"] == 0
    for query, name in (("days=0", "days"), ("limit=9999", "limit")):
        refused = client.get(f"/api/v1/feedback?{query}", headers=viewer)
        assert refused.status_code == 422 and name in refused.json["error"]["fields"]

    # Erasure takes the words with the person; the rating stays in the numbers.
    ana_id = answer["candidate_id"]
    assert client.delete(f"/api/v1/candidates/{ana_id}", headers=admin).status_code in (200, 204)
    report = client.get("/api/v1/feedback", headers=viewer).json
    assert report["answers"]["count"] == 0
    assert {g["name"]: g["ratings"] for g in report["by_stage"]}["onsite"] == 1
