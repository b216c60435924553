"""Referrals from the talent network, end to end through real SMTP, Redis, an RQ worker and a
webhook receiver: the "know someone?" mail carries the candidate's signed link; the public page
takes a recommendation; the person recommended is asked by mail and says yes; the ATS hears
``candidate.referred``; their hire thanks the referrer; the numbers count per campaign and
referrer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import pytest
from flask import Flask
from sqlalchemy import func, select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Referral, Suppression
from nurture.tasks.scheduling import run_periodic, run_tick
from nurture.tasks.sending import close_sender
from nurture.workflows.referrals import referral_pass
from tests.conftest import ats_post, auth_headers, make_app
from tests.support.receiver import Receiver
from tests.support.workers import drain

ANA = {
    "email": "ana@example.org",
    "first_name": "Ana",
    "last_name": "Lima",
    "role": "Staff Engineer",
    "recruiter_name": "Jordan Lee",
    "recruiter_email": "jordan@acme.example.com",
}
ASK = {
    "name": "Ask for referrals",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [{"delay": "PT0S", "template": "referral_ask"}],
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def system(sqlite_url, clock, redis_url, smtp: SmtpCapture, receiver) -> Iterator[Flask]:
    app = make_app(
        sqlite_url, clock, REDIS_URL=redis_url, SMTP_URL=smtp.url, FREQUENCY_CAP={},
        ATS_WEBHOOK_URL=receiver.url, COMPANY_NAME="Acme", SENDER_EMAIL="talent@acme.example.com",
    )  # fmt: skip
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def work(app: Flask) -> None:
    run_tick(app)
    run_periodic(app, {})
    drain(app)


def _links(html: str) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"]+)"', html)]


def _path(app: Flask, url: str) -> str:
    return url.replace(app.config["BASE_URL"], "")


def _form_token(page: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', page).group(1)


def _asked(system: Flask, smtp: SmtpCapture, clock) -> tuple[str, str]:  # noqa: ANN001
    """Ana is rejected, gets the referral ask; returns her referral page path and its HTML."""
    client = system.test_client()
    editor = auth_headers(system, "editor")
    client.post(
        "/api/v1/jobs",
        json={"title": "Platform Engineer", "url": "https://careers.example.com/jobs/7",
              "location": "Lisbon", "skills": ["go"]},
        headers=editor,
    )  # fmt: skip
    campaign = client.post("/api/v1/campaigns", json=ASK, headers=editor).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=editor)
    ats_post(client, {"type": "candidate.rejected", "candidate": ANA})
    work(system)
    [mail] = smtp.wait_for(1)
    message = mail.as_email()
    assert message["Subject"] == "Know someone for one of our open roles?"
    html = message.get_body(preferencelist=("html",)).get_content()
    [tracked] = [u for u in _links(html) if "/c/" in u and "Recommend" in html]
    clock.advance(timedelta(minutes=5))  # a person reads it later (scanners click at once)
    # The link goes through the click tracker (a referral link is counted per campaign) ...
    clicked = client.get(_path(system, tracked), headers={"User-Agent": "Mozilla/5.0 (iPhone)"})
    assert clicked.status_code == 302 and "/f/" in clicked.location
    page = client.get(_path(system, clicked.location))
    assert page.status_code == 200
    assert "Platform Engineer" in page.text  # ... to her page, which offers the openings
    return _path(system, clicked.location), page.text


def test_a_recommendation_asked_by_mail_joins_with_consent_and_a_hire_thanks_the_referrer(
    system: Flask, smtp: SmtpCapture, receiver: Receiver, clock
) -> None:
    client = system.test_client()
    path, page = _asked(system, smtp, clock)
    smtp.clear()

    # Bad input is named field by field and changes nothing; a forged token gets a 404.
    refused = client.post(path, data={"form_token": _form_token(page), "email": "not an address"})
    assert refused.status_code == 422
    assert "First name is required" in refused.text and "Please choose whether" in refused.text
    assert client.post(path, data={"email": "ben@example.org"}).status_code == 400  # no token
    forged = client.post("/f/WzEsMCwwXQ.forged", data={"email": "ben@example.org"})
    assert forged.status_code == 404 and client.get("/f/forged").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0

    opening = re.search(r'<option value="(\d+)">Platform Engineer', page).group(1)
    sent = client.post(
        path,
        data={
            "form_token": _form_token(page), "first_name": "Ben", "last_name": "Okafor",
            "email": "Ben@Example.org", "relation": "worked together",
            "note": "Ran our on-call rotation for two years.", "consent": "requested",
            "opening_id": opening,
        },
    )  # fmt: skip
    assert sent.status_code == 303
    assert "Thank you for your recommendation" in client.get(sent.location).text

    ana = db.session.scalar(select(Candidate).where(Candidate.email == "ana@example.org"))
    ben = db.session.scalar(select(Candidate).where(Candidate.email == "ben@example.org"))
    assert (ben.source, ben.referred_by_id, ben.first_name) == ("referral", ana.id, "Ben")
    assert ben.consent_at is None and ben.tag_names == []
    ben_id = ben.id
    referral = db.session.scalars(select(Referral)).one()
    assert (referral.state, referral.opening_title) == ("awaiting_consent", "Platform Engineer")
    assert referral.campaign_id is not None  # counted for the mail that carried the link

    # Ben gets one mail, asking; nothing reaches the ATS before he says yes.
    work(system)
    [ask] = smtp.wait_for(1)
    assert ask.rcpt_tos == ["ben@example.org"]
    consent_mail = ask.as_email()
    assert consent_mail["Subject"] == "Ana Lima recommended you to Acme"
    text = consent_mail.get_body(preferencelist=("plain",)).get_content()
    assert "Platform Engineer at Acme" in text
    consent_url = re.search(r"(https://\S+/f/consent/\S+)", text).group(1)
    assert receiver.requests == []

    consent_page = client.get(_path(system, consent_url))
    assert "Ana Lima recommended you" in consent_page.text
    yes = re.search(r'action="(/f/consent/[^"]+/yes)"', consent_page.text).group(1)
    token = re.findall(r'name="form_token" value="([^"]+)"', consent_page.text)[0]
    assert client.post(yes, data={"form_token": "forged"}).status_code == 400
    answered = client.post(yes, data={"form_token": token})
    assert answered.status_code == 303
    assert "Welcome to the Acme talent network" in client.get(answered.location).text
    ben = db.session.get(Candidate, ben_id)
    assert ben.consent_basis == "consent" and ben.consent_at == clock.now()
    assert ben.tag_names == ["referred"] and ben.topics == {}
    work(system)
    [referred] = [
        r for r in receiver.requests if r.headers["X-Nurture-Event"] == "candidate.referred"
    ]
    assert b'"email":"ben@example.org"' in referred.body and b"ana@example.org" in referred.body

    # Ben is hired: Ana hears about it, and the hire counts for her and for the campaign.
    smtp.clear()
    clock.advance(timedelta(days=20))
    ats_post(client, {"type": "candidate.hired", "candidate": {"email": "ben@example.org"}})
    work(system)
    [thanks] = smtp.wait_for(1)
    assert thanks.rcpt_tos == ["ana@example.org"]
    thanks_mail = thanks.as_email()
    assert thanks_mail["Subject"] == "Thank you: your recommendation joined Acme"
    assert (
        "you told us about Ben for Platform Engineer"
        in thanks_mail.get_body(preferencelist=("plain",)).get_content()
    )

    stats = client.get("/api/v1/referrals/stats", headers=auth_headers(system, "viewer")).json
    assert stats["totals"] == {
        "link_clicks": 1, "referrals": 1, "joined": 1, "awaiting_consent": 0, "hired": 1,
    }  # fmt: skip
    [per_campaign] = stats["campaigns"]
    assert (per_campaign["name"], per_campaign["referrals"], per_campaign["hired"]) == (
        "Ask for referrals", 1, 1,
    )  # fmt: skip
    [per_referrer] = stats["referrers"]
    assert (per_referrer["name"], per_referrer["hired"]) == ("Ana Lima", 1)


def test_consent_given_no_thanks_suppressed_and_unanswered(
    system: Flask, smtp: SmtpCapture, clock
) -> None:
    client = system.test_client()
    path, page = _asked(system, smtp, clock)
    smtp.clear()

    def recommend(email: str, consent: str) -> None:
        form = client.get(path).text
        answer = client.post(
            path,
            data={"form_token": _form_token(form), "first_name": email.split("@")[0].title(),
                  "email": email, "consent": consent},
        )  # fmt: skip
        assert answer.status_code == 303

    # "They agreed": in the network at once, with the consent's source and time.
    recommend("cara@example.org", "given")
    cara = db.session.scalar(select(Candidate).where(Candidate.email == "cara@example.org"))
    assert cara.consent_basis == "consent" and "ana@example.org" in cara.consent_source
    assert cara.tag_names == ["referred"]

    # An address that asked never to hear from us: same thank-you, nothing kept, no mail.
    client.post(
        "/api/v1/suppressions", json={"emails": ["dev@example.org"]},
        headers=auth_headers(system, "editor"),
    )  # fmt: skip
    recommend("dev@example.org", "requested")
    assert db.session.scalar(select(Candidate).where(Candidate.email == "dev@example.org")) is None

    # "No thanks": their details go for good, and they are never written to again.
    recommend("eli@example.org", "requested")
    work(system)
    [ask] = smtp.wait_for(1)
    consent_url = re.search(
        r"(https://\S+/f/consent/\S+)", ask.as_email().get_body(("plain",)).get_content()
    ).group(1)
    consent_page = client.get(_path(system, consent_url)).text
    no = re.search(r'action="(/f/consent/[^"]+/no)"', consent_page).group(1)
    token = re.findall(r'name="form_token" value="([^"]+)"', consent_page)[1]
    answered = client.post(no, data={"form_token": token})
    assert "Your details are deleted" in client.get(answered.location).text
    assert db.session.scalar(select(Candidate).where(Candidate.email == "eli@example.org")) is None
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 2

    # Someone who never answers is forgotten after REFERRAL_CONSENT_DAYS.
    recommend("fin@example.org", "requested")
    clock.advance(timedelta(days=31))
    assert referral_pass(db.session, clock.now(), 30).expired == 1
    db.session.commit()
    assert db.session.scalar(select(Candidate).where(Candidate.email == "fin@example.org")) is None
    states = sorted(db.session.scalars(select(Referral.state)))
    assert states == ["declined", "declined", "in_network", "not_contactable"]


def test_a_referral_link_by_api_is_checked(app: Flask) -> None:
    client = app.test_client()
    editor, viewer = auth_headers(app, "editor"), auth_headers(app, "viewer")
    bad = client.post("/api/v1/referrals/links", json={"candidate_id": "ana"}, headers=editor)
    assert bad.status_code == 422 and "candidate_id" in bad.json["error"]["fields"]
    missing = client.post("/api/v1/referrals/links", json={"candidate_id": 42}, headers=editor)
    assert missing.status_code == 404
    assert client.post(
        "/api/v1/referrals/links", json={"candidate_id": 1}, headers=viewer
    ).status_code == 403  # fmt: skip
    assert client.get("/api/v1/referrals?state=lost", headers=viewer).status_code == 422


def test_one_referrer_may_recommend_ten_people_a_day(app: Flask, clock) -> None:
    from nurture.core.errors import ValidationError
    from nurture.workflows.candidates import save_candidate
    from nurture.workflows.referrals import DAILY_LIMIT, refer

    ana, _ = save_candidate(db.session, {"email": "ana@example.org"}, clock.now())
    for n in range(DAILY_LIMIT):
        person = {"email": f"p{n}@example.org", "first_name": "P", "consent": "given"}
        refer(db.session, ana, None, None, person, clock.now())
    with pytest.raises(ValidationError) as refused:
        refer(db.session, ana, None, None, {"email": "q@example.org", "first_name": "Q",
                                             "consent": "given"}, clock.now())  # fmt: skip
    assert "come back tomorrow" in refused.value.fields["email"]
    clock.advance(timedelta(days=1, seconds=1))
    refer(db.session, ana, None, None, {"email": "q@example.org", "first_name": "Q",
                                         "consent": "given"}, clock.now())  # fmt: skip
