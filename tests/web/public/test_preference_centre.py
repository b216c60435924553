"""The preference centre over HTTP: every change a POST from our own page, forgeries refused."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.core.addresses import is_suppressed
from nurture.core.compliance.preferences import topic_allows
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.feedback.ratings import rating_summary
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Event, Message
from nurture.tasks.sending import close_sender, send_messages, sender_for
from tests.conftest import ats_post, auth_headers, make_app
from tests.web.admin.conftest import ARTIFACTS, LiveServer
from tests.web.public.test_tracking import HUMAN, Sent, make_message

SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"


@pytest.fixture
def sent(app, client, auth, clock) -> Sent:
    return make_message(client, auth, clock, app)


def page_path(sent: Sent) -> str:
    return sent.path(sent.tokens.preferences_url(sent.candidate_id, sent.message_id))


def form_token(page: str, action: str) -> str:
    """The hidden form token of the form posting to ``action`` on a rendered page."""
    found = re.search(
        rf'action="[^"]*/{action}">\s*<input type="hidden" name="form_token" value="([^"]+)"',
        page,
    )
    assert found, f"no {action} form on the page"
    return found.group(1)


def post(client, path: str, action: str, **fields: str):
    """Submit a form of the page at ``path`` as the candidate's browser would."""
    page = client.get(path).get_data(as_text=True)
    return client.post(f"{path}/{action}", data={"form_token": form_token(page, action), **fields})


def candidate(sent: Sent) -> Candidate:
    db.session.expire_all()
    return db.session.get(Candidate, sent.candidate_id)


# --- the page ------------------------------------------------------------------------------------


def test_the_page_shows_topics_pause_privacy_and_unsubscribe_and_changes_nothing(
    client, sent
) -> None:
    answer = client.get(page_path(sent), headers={"User-Agent": SCANNER})

    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "ana@example.org" in page
    for text in (
        "Check-ins",
        "newsletter",
        "Job alerts",
        "Pause everything for 3 months",
        "Don't track",
        "Download my data",
        "Delete all my data",
        "Unsubscribe from everything",
    ):
        assert text in page
    assert page.count('type="checkbox" name=') == 4  # three topics, tracking
    assert page.count(" checked") == 3  # missing keys mean subscribed; tracking is on
    person = candidate(sent)
    assert (person.topics, person.paused_until, person.status) == ({}, None, "active")


def test_topics_turned_off_are_stored_and_respected_in_sql(client, sent) -> None:
    answer = post(client, page_path(sent), "topics", checkins="on", newsletter="on")

    assert answer.status_code == 303
    person = candidate(sent)
    assert person.topics == {"checkins": True, "newsletter": True, "job_alerts": False}
    allowed = {
        topic: db.session.scalar(
            select(Candidate.id).where(Candidate.id == person.id, topic_allows(topic))
        )
        is not None
        for topic in ("checkins", "newsletter", "job_alerts", "system")
    }
    assert allowed == {"checkins": True, "newsletter": True, "job_alerts": False, "system": True}
    page = client.get(answer.location).get_data(as_text=True)
    assert "Your topics are saved." in page and page.count(" checked") == 2


def test_pause_for_three_months_and_unpause(client, sent, clock) -> None:
    answer = post(client, page_path(sent), "pause")

    assert answer.status_code == 303
    assert candidate(sent).paused_until == clock.now() + timedelta(days=90)
    page = client.get(answer.location).get_data(as_text=True)
    assert "Paused until" in page and "31 May 2026" in page and "Unpause now" in page

    assert post(client, page_path(sent), "unpause").status_code == 303
    assert candidate(sent).paused_until is None


def test_tracking_opt_out_is_stored(client, sent) -> None:
    assert post(client, page_path(sent), "tracking", opt_out="on").status_code == 303
    assert candidate(sent).tracking_opt_out is True
    assert post(client, page_path(sent), "tracking").status_code == 303
    assert candidate(sent).tracking_opt_out is False


# --- forgeries -----------------------------------------------------------------------------------


def test_a_cross_site_post_without_our_form_token_changes_nothing(app, client, auth, clock) -> None:
    ana = make_message(client, auth, clock, app, "ana@example.org")
    path = page_path(ana)
    page = client.get(path).get_data(as_text=True)
    bo_id = ats_post(
        client, {"type": "candidate.rejected", "candidate": {"email": "bo@example.org"}}
    ).json["candidate_id"]
    bo_page = client.get(ana.path(ana.tokens.preferences_url(bo_id, None))).get_data(as_text=True)

    attempts = [
        client.post(f"{path}/topics", data={}),  # a plain cross-site form: no token at all
        client.post(f"{path}/topics", data={"form_token": "forged"}),
        client.post(f"{path}/topics", data={"form_token": form_token(page, "pause")}),
        client.post(f"{path}/topics", data={"form_token": form_token(bo_page, "topics")}),
        client.post(f"{path}/pause", data={}),
        client.post(f"{path}/tracking", data={"opt_out": "on"}),
        client.post(f"{path}/delete", data={}),
        client.post(f"{path}/download", data={}),
        client.post(f"{path}/stay", data={}),
    ]
    refused_by_browser = client.post(
        f"{path}/pause",
        data={"form_token": form_token(page, "pause")},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    clock.advance(timedelta(days=2))
    expired = client.post(f"{path}/pause", data={"form_token": form_token(page, "pause")})

    assert [a.status_code for a in attempts] == [400] * len(attempts)
    assert refused_by_browser.status_code == 403
    assert expired.status_code == 400 and "reload" in expired.get_data(as_text=True)
    person = candidate(ana)
    assert (person.topics, person.paused_until, person.tracking_opt_out) == ({}, None, False)
    assert (person.status, person.consent_at) == ("active", None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/p/not-a-token"),
        ("post", "/p/not-a-token/topics"),
        ("post", "/p/not-a-token/delete"),
        ("get", "/p/not-a-token/delete"),
        ("post", "/p/not-a-token/download"),
        ("get", "/k/not-a-token"),
        ("get", "/r/not-a-token"),
    ],
)
def test_a_forged_page_token_is_a_404(client, sent, method, path) -> None:
    assert getattr(client, method)(path, data={"form_token": "x"}).status_code == 404
    assert candidate(sent).status == "active"


def test_a_page_signed_with_another_secret_is_a_404(client, sent) -> None:
    forger = Tokens("a-guess-at-the-secret", sent.tokens.base_url)
    path = sent.path(forger.preferences_url(sent.candidate_id, sent.message_id))

    assert client.get(path).status_code == 404
    assert client.post(f"{path}/pause", data={}).status_code == 404
    assert candidate(sent).paused_until is None


# --- access and erasure --------------------------------------------------------------------------


def test_download_returns_their_data_and_nobody_elses(app, client, auth, clock) -> None:
    ana = make_message(client, auth, clock, app, "ana@example.org")
    ats_post(client, {"type": "candidate.rejected", "candidate": {"email": "bo@example.org"}})
    clock.advance(timedelta(hours=1))
    create_due_messages(db.session, clock.now())
    client.get(ana.path(ana.tokens.open_url(ana.message_id)), headers={"User-Agent": HUMAN})

    answer = post(client, page_path(ana), "download")

    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert "attachment" in answer.headers["Content-Disposition"]
    data = json.loads(answer.get_data(as_text=True))
    assert data["profile"]["email"] == "ana@example.org"
    assert data["profile"]["first_name"] == "Ana"
    assert data["profile"]["preferences"]["topics"] == {
        "checkins": True,
        "newsletter": True,
        "job_alerts": True,
    }
    assert [m["id"] for m in data["messages"]] == [ana.message_id]
    assert [(e["kind"], e["message_id"]) for e in data["events"]] == [("open", ana.message_id)]
    assert "bo@example.org" not in answer.get_data(as_text=True)


def test_delete_asks_first_then_erases_and_suppresses(client, sent) -> None:
    confirm = client.get(f"{page_path(sent)}/delete")
    assert confirm.status_code == 200
    assert "Yes, delete my data" in confirm.get_data(as_text=True)
    assert candidate(sent).status == "active"  # asking changes nothing

    page = confirm.get_data(as_text=True)
    answer = client.post(
        f"{page_path(sent)}/delete", data={"form_token": form_token(page, "delete")}
    )

    assert answer.status_code == 303
    person = candidate(sent)
    assert person.status == "erased"
    assert person.email.endswith("@erased.invalid") and person.first_name == ""
    assert is_suppressed(db.session, "ana@example.org")
    assert [e.status for e in db.session.scalars(select(Enrolment))] == ["exited"]
    after = client.get(answer.location).get_data(as_text=True)
    assert "Your data has been deleted" in after and "ana@example.org" not in after


# --- ratings -------------------------------------------------------------------------------------


def ratings() -> list[tuple[int | None, str, bool]]:
    return [
        (e.message_id, e.value, e.machine)
        for e in db.session.scalars(select(Event).where(Event.kind == "rating"))
    ]


def test_a_rating_link_records_one_answer_and_a_later_one_replaces_it(client, sent, auth) -> None:
    four, two = (sent.path(sent.tokens.rating_url(sent.message_id, v)) for v in (4, 2))

    first = client.get(four, headers={"User-Agent": HUMAN})
    assert first.status_code == 200
    assert "4 out of 5" in first.get_data(as_text=True)
    assert ratings() == [(sent.message_id, "4", False)]

    assert client.get(two, headers={"User-Agent": HUMAN}).status_code == 200
    assert ratings() == [(sent.message_id, "2", False)]

    summary = rating_summary(db.session, sent.campaign_id)
    assert (summary.count, summary.average, summary.distribution[2]) == (1, 2.0, 1)
    # The campaign's stats show it too.
    stats = client.get(f"/api/v1/campaigns/{sent.campaign_id}/stats", headers=auth).json
    assert stats["ratings"] == {
        "count": 1,
        "average": 2.0,
        "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 0},
    }


def test_link_scanners_do_not_rate(client, sent) -> None:
    for value in range(1, 6):
        url = sent.path(sent.tokens.rating_url(sent.message_id, value))
        assert client.get(url, headers={"User-Agent": SCANNER}).status_code == 200
    assert ratings() == []

    for value, agent in ((5, HUMAN), (1, SCANNER)):
        url = sent.path(sent.tokens.rating_url(sent.message_id, value))
        client.get(url, headers={"User-Agent": agent})
    assert ratings() == [(sent.message_id, "5", False)]


def test_a_rating_outside_one_to_five_is_refused(client, sent) -> None:
    for payload in ([sent.message_id, 9], [sent.message_id, "5"], [sent.message_id + 99, 3]):
        assert client.get(f"/r/{sent.tokens.sign('rating', payload)}").status_code == 404
    assert ratings() == []


# --- re-consent ----------------------------------------------------------------------------------


def test_the_reconsent_link_asks_and_only_the_button_records_consent(client, sent, clock) -> None:
    path = sent.path(sent.tokens.reconsent_url(sent.candidate_id, sent.message_id))

    page = client.get(path, headers={"User-Agent": SCANNER})
    assert page.status_code == 200
    assert "Yes, keep me in the talent network" in page.get_data(as_text=True)
    assert candidate(sent).consent_at is None

    token = form_token(page.get_data(as_text=True), "stay")
    assert client.post(f"{page_path(sent)}/stay", data={"form_token": token}).status_code == 303
    person = candidate(sent)
    assert (person.consent_basis, person.consent_source) == ("consent", "re-consent mail")
    assert person.consent_at == clock.now()


# --- what the next mail looks like ---------------------------------------------------------------

DRIP = {
    "name": "Follow-up",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [{"delay": "PT0S", "template": "rejection_followup"}],
}


@pytest.fixture
def mail_app(sqlite_url, clock, smtp, request):
    overrides = getattr(request, "param", {})
    app = make_app(sqlite_url, clock, SMTP_URL=smtp.url, **overrides)
    with app.app_context():
        # The Sender reads OPEN_TRACKING through Tokens.from_config (see the report for wiring).
        sender_for(app).tokens = Tokens.from_config(app.config)
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def send_to(app, people: dict[str, bool]) -> None:
    """Mail each address (opted out of tracking or not) through the real sender and relay."""
    client = app.test_client()
    headers = auth_headers(app, "editor")
    campaign = client.post("/api/v1/campaigns", json=DRIP, headers=headers).json["id"]
    assert client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers).status_code == 200
    tokens = Tokens.from_config(app.config)
    for email, opt_out in people.items():
        person = {"email": email, "first_name": email[:3].title()}
        candidate_id = ats_post(client, {"type": "candidate.rejected", "candidate": person}).json[
            "candidate_id"
        ]
        if opt_out:
            path = tokens.preferences_url(candidate_id, None).removeprefix(tokens.base_url)
            assert post(client, path, "tracking", opt_out="on").status_code == 303
    create_due_messages(db.session, app.extensions["nurture.clock"].now())
    ids = list(db.session.scalars(select(Message.id)))
    assert send_messages(ids) == {"sent": len(people)}


def captured_html(smtp) -> dict[str, str]:
    found = {}
    for captured in smtp.messages:
        mail = captured.as_email()
        found[captured.rcpt_tos[0]] = mail.get_body(("html",)).get_content()
    return found


def test_opting_out_of_tracking_removes_the_pixel_and_the_redirects(mail_app, smtp) -> None:
    send_to(mail_app, {"ana@example.org": True, "bo@example.org": False})

    html = captured_html(smtp)
    base = mail_app.config["BASE_URL"]
    assert f"{base}/o/" not in html["ana@example.org"]
    assert f"{base}/c/" not in html["ana@example.org"]
    assert "https://careers.example.com/talent-network" in html["ana@example.org"]
    assert f"{base}/p/" in html["ana@example.org"]  # the footer's own links stay
    assert f"{base}/o/" in html["bo@example.org"] and f"{base}/c/" in html["bo@example.org"]


@pytest.mark.parametrize("mail_app", [{"OPEN_TRACKING": False}], indirect=True)
def test_open_tracking_off_means_no_pixel_for_anyone(mail_app, smtp) -> None:
    send_to(mail_app, {"ana@example.org": False, "bo@example.org": False})

    for html in captured_html(smtp).values():
        assert "/o/" not in html
        assert "/c/" in html  # clicks are still tracked


# --- on a phone ----------------------------------------------------------------------------------


def test_the_page_on_a_390px_phone(app, client, auth, clock, browser) -> None:
    sent = make_message(client, auth, clock, app)
    server = LiveServer(app)
    try:
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.set_default_timeout(15000)
        page.goto(server.url + page_path(sent))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "preferences-390.png"
        page.screenshot(path=str(shot), full_page=True)
        assert Path(shot).stat().st_size > 10_000

        # A real browser posting the real form (Sec-Fetch-Site: same-origin) works.
        page.click("text=Pause everything for 3 months")
        page.wait_for_selector("text=Paused until")
        page.screenshot(path=str(ARTIFACTS / "preferences-paused-390.png"), full_page=True)
        context.close()
    finally:
        server.stop()
    assert candidate(sent).paused_until == clock.now() + timedelta(days=90)
