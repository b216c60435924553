"""Job alerts: matching, ranking and reasons, review, and approval that enrols each person once."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from nurture.core.audience.engagement import growth
from nurture.core.campaigns import openings as opening_service
from nurture.core.compliance.suppressions import suppress
from nurture.core.errors import NotFound, ValidationError
from nurture.extensions import db
from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
)
from nurture.models.openings import OpeningMatch
from nurture.tasks.sending import close_sender
from tests.conftest import make_app

JOB = {
    "title": "Senior Data Engineer",
    "role_family": "data",
    "skills": ["Python", "sql", "airflow", "spark"],
    "location": "Berlin, Germany",
    "url": "https://careers.example.com/jobs/42",
    "summary": "Build the pipelines behind our matching.",
}


@pytest.fixture
def session(database_url, clock):
    app = make_app(database_url, clock)
    with app.app_context():
        yield db.session
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def person(email: str, now: datetime, **fields: Any) -> dict[str, Any]:
    """A candidates row with defaults for what a test does not care about."""
    row = {
        "email": email,
        "first_name": email.split("@")[0].title(),
        "last_name": "",
        "timezone": "",
        "location": "",
        "role": "",
        "stage": "",
        "rejection_reason": "",
        "strengths": "",
        "skills": [],
        "source": "",
        "recruiter_name": "",
        "recruiter_email": "",
        "consent_basis": "",
        "consent_source": "",
        "attributes": {},
        "status": CandidateStatus.ACTIVE.value,
        "engagement_score": 0.0,
        "topics": {},
        "paused_until": None,
        "tracking_opt_out": False,
        "soft_bounces": 0,
        "created_at": now,
        "updated_at": now,
    }
    row.update(fields)
    return row


def add(session, now: datetime, *rows: dict[str, Any]) -> dict[str, int]:
    """Insert the rows; ``engagement_score`` is the score wanted at ``now``, stored as points."""
    stored = [
        {
            **{k: v for k, v in row.items() if k != "engagement_score"},
            "engagement_points": row["engagement_score"] * growth(now),
        }
        for row in rows
    ]
    session.execute(insert(Candidate), stored)
    session.flush()
    emails = [r["email"] for r in rows]
    return dict(
        session.execute(
            select(Candidate.email, Candidate.id).where(Candidate.email.in_(emails))
        ).all()
    )


def listed(session, job) -> dict[str, OpeningMatch]:
    rows = session.execute(
        select(Candidate.email, OpeningMatch)
        .join(OpeningMatch, OpeningMatch.candidate_id == Candidate.id)
        .where(OpeningMatch.opening_id == job.id)
    ).all()
    return {email: match for email, match in rows}


# --- creating a job opening -----------------------------------------------------------------------


def test_bad_fields_are_named_and_nothing_is_stored(session, clock) -> None:
    bad = {
        "title": " ",
        "url": "javascript:alert(1)",
        "skills": "",
        "location": "",
        "remote": "perhaps",
        "summary": 3,
    }
    with pytest.raises(ValidationError) as caught:
        opening_service.create_opening(session, bad, clock.now())
    assert set(caught.value.fields) == {"title", "url", "skills", "remote", "summary"}
    assert "http" in caught.value.fields["url"]
    with pytest.raises(ValidationError) as caught:
        opening_service.create_opening(
            session, {**JOB, "skills": [1, 2], "location": ""}, clock.now()
        )
    assert set(caught.value.fields) == {"skills", "location"}
    with pytest.raises(ValidationError) as caught:
        opening_service.create_opening(session, {**JOB, "url": "ftp://example.com/x"}, clock.now())
    assert set(caught.value.fields) == {"url"}
    assert session.scalar(select(func.count()).select_from(OpeningMatch)) == 0
    job = opening_service.create_opening(
        session, {**JOB, "skills": "Python, SQL , sql"}, clock.now()
    )
    assert job.skills == ["python", "sql"]


# --- matching -------------------------------------------------------------------------------------


def test_ranked_by_skills_then_role_place_and_stage_with_reasons(session, clock) -> None:
    now = clock.now()
    add(
        session,
        now,
        person(
            "ana@example.org",
            now,
            skills=["airflow", "python", "sql"],
            role="Data Engineer",
            location="Berlin, Germany",
            stage="Final interview",
        ),
        person(
            "bo@example.org",
            now,
            skills=["airflow", "python", "sql"],
            role="Backend developer",
            location="Lisbon, Portugal",
        ),
        person(
            "chen@example.org",
            now,
            skills=["python"],
            role="Data analyst",
            location="Munich, Germany",
        ),
        person(
            "dee@example.org",
            now,
            skills=["python", "spark", "sql", "airflow"],
            role="ML engineer",
            location="Paris, France",
            stage="phone screen",
        ),
        person(
            "eve@example.org",
            now,
            skills=["figma", "sketch"],
            role="Data designer",
            location="Berlin",
        ),
    )
    job, count = opening_service.open_for_review(session, JOB, now)
    assert count == 4  # eve shares no skill
    order = [e for e, _ in sorted(listed(session, job).items(), key=lambda kv: -kv[1].score)]
    # Skills lead; a near-complete match nearby who reached the final beats a full one abroad.
    assert order == ["ana@example.org", "dee@example.org", "bo@example.org", "chen@example.org"]
    matches = listed(session, job)
    assert matches["ana@example.org"].reasons == [
        "3 of 4 skills: airflow, python, sql",
        "role: Data Engineer (data)",
        "same city: Berlin",
        "reached final interview",
    ]
    assert matches["chen@example.org"].reasons == [
        "1 of 4 skills: python",
        "role: Data analyst (data)",
        "same region: Germany",
    ]
    assert matches["bo@example.org"].reasons == ["3 of 4 skills: airflow, python, sql"]
    assert matches["dee@example.org"].reasons == [
        "4 of 4 skills: airflow, python, spark, sql",
        "role: ML engineer (data)",
    ]
    assert matches["ana@example.org"].score == pytest.approx(45 + 15 + 15 + 5)


def test_a_remote_job_counts_everyone_as_near(session, clock) -> None:
    now = clock.now()
    add(
        session,
        now,
        person("far@example.org", now, skills=["sql"], location="Lima, Peru"),
        person("near@example.org", now, skills=["sql"], location="Berlin"),
    )
    job, _ = opening_service.open_for_review(session, {**JOB, "remote": True}, now)
    matches = listed(session, job)
    assert matches["far@example.org"].reasons[-1] == "remote role (lives in Lima, Peru)"
    assert matches["near@example.org"].reasons[-1] == "same city: Berlin"
    assert matches["near@example.org"].score > matches["far@example.org"].score


def test_people_who_may_not_get_it_are_never_proposed(session, clock) -> None:
    now = clock.now()
    skills = ["python"]
    ids = add(
        session,
        now,
        person("ok@example.org", now, skills=skills),
        person("said-yes@example.org", now, skills=skills, topics={"job_alerts": True}),
        person("no-newsletter@example.org", now, skills=skills, topics={"newsletter": False}),
        person("pause-over@example.org", now, skills=skills, paused_until=now - timedelta(days=1)),
        person(
            "opted-out@example.org",
            now,
            skills=skills,
            topics={"job_alerts": False, "newsletter": True},
        ),
        person("paused@example.org", now, skills=skills, paused_until=now + timedelta(days=60)),
        person("unsub@example.org", now, skills=skills, status=CandidateStatus.UNSUBSCRIBED.value),
        person("hired@example.org", now, skills=skills, status=CandidateStatus.HIRED.value),
        person("bounced@example.org", now, skills=skills, status=CandidateStatus.BOUNCED.value),
        person("suppressed@example.org", now, skills=skills),
    )
    suppress(session, "suppressed@example.org", "complained", now)
    session.flush()
    job, _ = opening_service.open_for_review(session, JOB, now)
    assert set(listed(session, job)) == {
        "ok@example.org",
        "said-yes@example.org",
        "no-newsletter@example.org",
        "pause-over@example.org",
    }
    # Adding one of them by hand is refused, naming the field.
    for email in ("opted-out@example.org", "hired@example.org", "suppressed@example.org"):
        with pytest.raises(ValidationError) as caught:
            opening_service.add_candidate(session, job, email, now)
        assert set(caught.value.fields) == {"email"}
    with pytest.raises(ValidationError):
        opening_service.add_candidate(session, job, "nobody@example.org", now)
    assert ids  # rows exist; only eligibility kept them out


def _oracle(job: Any, people: list[dict[str, Any]], now: datetime) -> dict[str, float]:
    """The same rules in plain Python: who may be proposed and with what score."""
    wanted = list(job.skills)
    out = {}
    for p in people:
        shared = [s for s in wanted if s in p["skills"]]
        ok = (
            p["status"] == "active"
            and shared
            and (p["paused_until"] is None or p["paused_until"] <= now)
            and p["topics"].get("job_alerts") is not False
        )
        if not ok:
            continue
        score = len(shared) * 60.0 / len(wanted)
        role = p["role"].lower()
        if any(t in role for t in opening_service.family_terms(job.role_family)):
            score += 15
        loc = p["location"].lower()
        if "berlin" in loc:
            score += 15
        elif "germany" in loc:
            score += 8
        stage = p["stage"].lower()
        for words, points in opening_service.STAGES:
            if any(w in stage for w in words):
                score += points
                break
        e = max(p["engagement_score"], 0.0)
        score += 4.0 * e / (e + 10.0)
        out[p["email"]] = round(score, 1)
    return out


def test_generated_people_match_a_plain_python_evaluation(session, clock) -> None:
    now = clock.now()
    rng = random.Random(20260302)
    pool = ["python", "sql", "airflow", "spark", "go", "react", "figma", "kafka", "dbt"]
    roles = ["Data Engineer", "Backend developer", "Data analyst", "Designer", "ML engineer", ""]
    places = ["Berlin, Germany", "Hamburg, Germany", "Berlin", "Paris, France", "", "Lisbon"]
    stages = ["", "phone screen", "technical interview", "onsite", "final interview", "offer"]
    people = []
    for n in range(400):
        people.append(
            person(
                f"p{n}@example.org",
                now,
                skills=sorted(rng.sample(pool, rng.randint(0, 4))),
                role=rng.choice(roles),
                location=rng.choice(places),
                stage=rng.choice(stages),
                engagement_score=rng.choice([0.0, 0.0, 2.5, 10.0, 40.0, -1.0]),
                status=rng.choice(["active"] * 6 + ["unsubscribed", "hired", "bounced"]),
                topics=rng.choice(
                    [{}, {}, {"job_alerts": True}, {"job_alerts": False}, {"newsletter": False}]
                ),
                paused_until=rng.choice(
                    [None, None, None, now + timedelta(days=9), now - timedelta(days=9)]
                ),
            )
        )
    add(session, now, *people)
    job = opening_service.create_opening(session, JOB, now)
    expected = _oracle(job, people, now)
    found = opening_service.find_matches(session, job, now)
    assert {p.candidate_id for p in found} and len(found) == len(expected)
    emails = dict(session.execute(select(Candidate.id, Candidate.email)).all())
    assert {emails[p.candidate_id]: p.score for p in found} == pytest.approx(expected)
    scores = [p.score for p in found]
    assert scores == sorted(scores, reverse=True)
    # The limit keeps the best ones.
    top = opening_service.find_matches(session, job, now, limit=25)
    assert [p.candidate_id for p in top] == [p.candidate_id for p in found[:25]]


# --- review and approval --------------------------------------------------------------------------


def test_approval_enrols_the_reviewed_list_once(session, clock) -> None:
    now = clock.now()
    add(session, now, *[person(f"c{n}@example.org", now, skills=["sql"]) for n in range(5)])
    job, count = opening_service.open_for_review(session, JOB, now)
    assert count == 5
    ids = dict(session.execute(select(Candidate.email, Candidate.id)).all())
    opening_service.set_excluded(session, job, ids["c0@example.org"], True, now)
    # Turned off job alerts after the list was made: re-checked at approval.
    session.get(Candidate, ids["c1@example.org"]).topics = {"job_alerts": False}
    session.flush()
    assert opening_service.pending_count(session, job, now) == 3
    assert opening_service.approve(session, job, now) == 3
    campaign = session.get(Campaign, job.campaign_id)
    assert (campaign.kind, campaign.topic, campaign.status, campaign.entry_type) == (
        "job_alert",
        "job_alerts",
        CampaignStatus.ACTIVE,
        "manual",
    )
    assert [s.template for s in campaign.steps] == ["job_alert"]
    enrolled = set(session.scalars(select(Enrolment.candidate_id)))
    assert enrolled == {ids[f"c{n}@example.org"] for n in (2, 3, 4)}
    # Approving again, even after the first enrolments completed, enrols nobody twice.
    session.execute(Enrolment.__table__.update().values(status=EnrolmentStatus.COMPLETED))
    assert opening_service.approve(session, job, now) == 0
    assert job.campaign_id == campaign.id
    # Someone added later is the only one the next approval reaches.
    opening_service.add_candidate(session, job, "c0@example.org", now)  # put back by hand
    assert opening_service.approve(session, job, now) == 1
    assert session.scalar(select(func.count()).select_from(Enrolment)) == 4
    summary = opening_service.summary(session, job, now)
    assert summary | {"sent": 0} == {
        "matches": 5,
        "excluded": 0,
        "pending": 0,
        "enrolled": 4,
        "sent": 0,
    }


def test_removing_someone_after_approval_ends_their_pending_mail(session, clock) -> None:
    now = clock.now()
    ids = add(
        session,
        now,
        person("a@example.org", now, skills=["sql"]),
        person("b@example.org", now, skills=["sql"]),
    )
    job, _ = opening_service.open_for_review(session, JOB, now)
    opening_service.approve(session, job, now)
    opening_service.set_excluded(session, job, ids["a@example.org"], True, now)
    status = dict(session.execute(select(Enrolment.candidate_id, Enrolment.status)).all())
    assert status == {ids["a@example.org"]: "exited", ids["b@example.org"]: "active"}
    with pytest.raises(NotFound):
        opening_service.set_excluded(session, job, 999999, True, now)


def test_a_job_alert_mail_sees_the_job(session, clock) -> None:
    now = clock.now()
    job, _ = opening_service.open_for_review(session, {**JOB, "remote": True}, now)
    opening_service.approve(session, job, now)
    campaign = session.get(Campaign, job.campaign_id)
    assert opening_service.opening_context(session, campaign) == {
        "title": "Senior Data Engineer",
        "location": "Berlin, Germany or remote",
        "url": "https://careers.example.com/jobs/42",
        "summary": "Build the pipelines behind our matching.",
    }
