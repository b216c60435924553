"""Open pixel, click redirect and unsubscribe: signed tokens for real mail; forgeries refused."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from itsdangerous.encoding import base64_encode
from sqlalchemy import func, select

from nurture.core.addresses import is_suppressed
from nurture.core.delivery.scheduling import create_due_messages
from nurture.core.feedback.tracking import instrument
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Enrolment, Event, Message
from tests.conftest import ats_post

DRIP = {
    "name": "Silver medalists",
    "kind": "drip",
    "entry": {"ats_event": "candidate.rejected"},
    "steps": [
        {"delay": "PT1H", "template": "rejection_followup"},
        {"delay": "P3D", "template": "talent_network_invite"},
    ],
}

JOBS_URL = "https://careers.example.com/jobs?id=7&ref=mail"
NETWORK_URL = "https://careers.example.com/talent-network"
MAIL_HTML = (
    "<html><body>"
    f'<p><a href="{JOBS_URL.replace("&", "&amp;")}">See the role</a></p>'
    f'<p><a href="{NETWORK_URL}">Join the network</a></p>'
    "</body></html>"
)

HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko)"
GOOGLE_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


@dataclass
class Sent:
    """A real message of a real campaign, and the tokens that speak for it."""

    campaign_id: int
    candidate_id: int
    message_id: int
    tokens: Tokens

    def path(self, url: str) -> str:
        base = self.tokens.base_url
        assert url.startswith(base + "/"), url
        return url.removeprefix(base)


def make_message(client, auth, clock, app: Flask, email: str = "ana@example.org") -> Sent:
    """Campaign through the API, enrolment through the signed ATS webhook, the scheduler's row."""
    created = client.post("/api/v1/campaigns", json=DRIP, headers=auth)
    assert created.status_code == 201, created.json
    campaign_id = created.json["id"]
    assert client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=auth).status_code == 200
    answer = ats_post(
        client, {"type": "candidate.rejected", "candidate": {"email": email, "first_name": "Ana"}}
    )
    assert answer.json["enrolled_campaign_ids"] == [campaign_id]
    clock.advance(timedelta(hours=1))
    created_rows, _ = create_due_messages(db.session, clock.now())
    assert created_rows == 1
    candidate_id = answer.json["candidate_id"]
    message_id = db.session.scalar(select(Message.id).where(Message.candidate_id == candidate_id))
    tokens = Tokens(app.config["SECRET_KEY"], app.config["BASE_URL"])
    return Sent(campaign_id, candidate_id, message_id, tokens)


@pytest.fixture
def sent(app, client, auth, clock) -> Sent:
    return make_message(client, auth, clock, app)


def events(kind: str | None = None) -> list[Event]:
    query = select(Event).order_by(Event.id)
    if kind is not None:
        query = query.where(Event.kind == kind)
    return list(db.session.scalars(query))


def event_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Event))


def tracked_links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def tamper(token: str, payload: object) -> str:
    """The same signature over another payload, as an attacker editing the URL would make it."""
    _, signature = token.rsplit(".", 1)
    body = base64_encode(json.dumps(payload, separators=(",", ":"))).decode()
    return f"{body}.{signature}"


def stats(client, auth, campaign_id: int) -> dict:
    answer = client.get(f"/api/v1/campaigns/{campaign_id}/stats", headers=auth)
    assert answer.status_code == 200
    return answer.json["steps"][0]


# --- open pixel ----------------------------------------------------------------------------------


def test_the_open_pixel_records_one_open_and_answers_a_gif(client, sent) -> None:
    html = instrument(MAIL_HTML, sent.tokens, sent.message_id)
    pixel = re.search(r'<img src="([^"]+/o/[^"]+\.gif)"', html).group(1)

    answer = client.get(sent.path(pixel), headers={"User-Agent": HUMAN})

    assert answer.status_code == 200
    assert answer.mimetype == "image/gif"
    assert answer.data.startswith(b"GIF8")
    assert "no-store" in answer.headers["Cache-Control"]
    recorded = events()
    assert [(e.kind, e.message_id, e.candidate_id, e.machine) for e in recorded] == [
        ("open", sent.message_id, sent.candidate_id, False)
    ]


def test_the_pixel_goes_before_the_closing_body_tag(sent) -> None:
    html = instrument(MAIL_HTML, sent.tokens, sent.message_id)

    assert html.endswith("</body></html>")
    assert sent.tokens.open_url(sent.message_id) in html


# --- click redirect ------------------------------------------------------------------------------


def test_a_click_redirects_to_exactly_the_signed_url_and_records_it(client, sent) -> None:
    html = instrument(MAIL_HTML, sent.tokens, sent.message_id)
    links = tracked_links(html)
    assert len(links) == 2 and all("/c/" in link for link in links)
    assert "careers.example.com" not in " ".join(links)  # the targets are inside the tokens

    first = client.get(sent.path(links[0]), headers={"User-Agent": HUMAN})
    second = client.get(sent.path(links[1]), headers={"User-Agent": HUMAN})

    assert first.status_code == 302 and first.location == JOBS_URL
    assert second.status_code == 302 and second.location == NETWORK_URL
    assert [(e.kind, e.url, e.message_id, e.machine) for e in events()] == [
        ("click", JOBS_URL, sent.message_id, False),
        ("click", NETWORK_URL, sent.message_id, False),
    ]


def test_a_click_token_cannot_be_pointed_at_another_url(client, sent) -> None:
    token = sent.tokens.click_url(sent.message_id, JOBS_URL).rsplit("/", 1)[1]

    for payload in (
        [sent.message_id, "https://evil.example/phish"],
        [sent.message_id, JOBS_URL + "&next=https://evil.example"],
        [sent.message_id + 1, JOBS_URL],
    ):
        answer = client.get(f"/c/{tamper(token, payload)}")
        assert answer.status_code == 404, payload
        assert "Location" not in answer.headers
    assert event_count() == 0


def test_a_url_signed_with_another_secret_is_refused(client, sent) -> None:
    forger = Tokens("a-guess-at-the-secret", sent.tokens.base_url)

    click = client.get(sent.path(forger.click_url(sent.message_id, "https://evil.example/")))
    pixel = client.get(sent.path(forger.open_url(sent.message_id)))
    unsubscribe_page = client.get(sent.path(forger.unsubscribe_url(sent.candidate_id, None)))
    unsubscribe = client.post(
        sent.path(forger.unsubscribe_url(sent.candidate_id, sent.message_id)),
        data={"List-Unsubscribe": "One-Click"},
    )

    assert [r.status_code for r in (click, pixel, unsubscribe_page, unsubscribe)] == [404] * 4
    assert "Location" not in click.headers
    assert event_count() == 0
    assert db.session.get(Candidate, sent.candidate_id).status == "active"


def test_a_token_made_for_one_purpose_does_not_work_for_another(client, sent) -> None:
    open_token = sent.tokens.sign("open", sent.message_id)
    click_token = sent.tokens.sign("click", [sent.message_id, JOBS_URL])
    unsubscribe_token = sent.tokens.sign("unsubscribe", [sent.candidate_id, sent.message_id])

    assert client.get(f"/c/{open_token}").status_code == 404
    assert client.get(f"/o/{click_token}.gif").status_code == 404
    assert client.get(f"/o/{unsubscribe_token}.gif").status_code == 404
    assert (
        client.post(f"/u/{click_token}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    )
    assert event_count() == 0
    assert db.session.get(Candidate, sent.candidate_id).status == "active"


def test_a_signed_click_to_something_that_is_not_a_web_link_is_refused(client, sent) -> None:
    token = sent.tokens.sign("click", [sent.message_id, "javascript:alert(document.cookie)"])

    assert client.get(f"/c/{token}").status_code == 404
    assert event_count() == 0


# --- forged and tampered tokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "make_path"),
    [
        ("get", lambda s: "/o/not-a-token.gif"),
        ("get", lambda s: f"/o/{s.tokens.sign('open', s.message_id)[:-2]}xx.gif"),
        (
            "get",
            lambda s: f"/o/{tamper(s.tokens.sign('open', s.message_id), s.message_id + 1)}.gif",
        ),
        ("get", lambda s: "/c/not-a-token"),
        ("get", lambda s: f"/c/{s.tokens.sign('click', [s.message_id, JOBS_URL])[:-2]}xx"),
        ("get", lambda s: "/u/not-a-token"),
        ("post", lambda s: "/u/not-a-token"),
        ("get", lambda s: f"/u/{s.tokens.sign('unsubscribe', [s.candidate_id, None])[:-2]}xx"),
        ("post", lambda s: f"/u/{s.tokens.sign('unsubscribe', [s.candidate_id, None])[:-2]}xx"),
        (
            "post",
            lambda s: (
                "/u/"
                + tamper(
                    s.tokens.sign("unsubscribe", [s.candidate_id + 1, None]), [s.candidate_id, None]
                )
            ),
        ),
    ],
)
def test_a_forged_token_is_a_404_and_changes_nothing(client, sent, method, make_path) -> None:
    answer = getattr(client, method)(make_path(sent), data={"List-Unsubscribe": "One-Click"})

    assert answer.status_code == 404
    assert event_count() == 0
    assert db.session.get(Candidate, sent.candidate_id).status == "active"
    assert [e.status for e in db.session.scalars(select(Enrolment))] == ["active"]
    assert not is_suppressed(db.session, "ana@example.org")


def test_an_unsubscribe_token_for_someone_elses_message_is_refused(
    app, client, auth, clock
) -> None:
    ana = make_message(client, auth, clock, app, "ana@example.org")
    bo_id = ats_post(
        client, {"type": "candidate.rejected", "candidate": {"email": "bo@example.org"}}
    ).json["candidate_id"]

    # Signed by us, but pairs Bo with Ana's message: not a link we ever put in a mail.
    url = ana.tokens.unsubscribe_url(bo_id, ana.message_id)
    answer = client.post(ana.path(url), data={"List-Unsubscribe": "One-Click"})

    assert answer.status_code == 404
    assert db.session.get(Candidate, bo_id).status == "active"
    assert event_count() == 0


# --- unsubscribe ---------------------------------------------------------------------------------


def test_get_shows_a_confirmation_page_and_does_not_unsubscribe(client, sent) -> None:
    url = sent.tokens.unsubscribe_url(sent.candidate_id, sent.message_id)

    answer = client.get(sent.path(url), headers={"User-Agent": "Mimecast link scanner"})

    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert "ana@example.org" in page
    assert re.search(r'<form[^>]+method="post"', page)
    assert db.session.get(Candidate, sent.candidate_id).status == "active"
    assert [e.status for e in db.session.scalars(select(Enrolment))] == ["active"]
    assert not is_suppressed(db.session, "ana@example.org")
    assert event_count() == 0


def test_one_click_post_unsubscribes_everywhere(app, client, auth, sent) -> None:
    other = client.post(
        "/api/v1/campaigns", json={**DRIP, "name": "Second drip"}, headers=auth
    ).json["id"]
    client.post(f"/api/v1/campaigns/{other}/activate", headers=auth)
    ats_post(client, {"type": "candidate.rejected", "candidate": {"email": "ana@example.org"}})
    url = sent.tokens.unsubscribe_url(sent.candidate_id, sent.message_id)

    # As a mail provider sends it (RFC 8058): no cookie, no CSRF token, just the form field.
    answer = client.post(sent.path(url), data={"List-Unsubscribe": "One-Click"})

    assert answer.status_code == 200
    assert db.session.get(Candidate, sent.candidate_id).status == "unsubscribed"
    exits = [
        (e.campaign_id, e.status, e.exit_reason) for e in db.session.scalars(select(Enrolment))
    ]
    assert sorted(exits) == sorted(
        [(sent.campaign_id, "exited", "unsubscribed"), (other, "exited", "unsubscribed")]
    )
    assert is_suppressed(db.session, "ana@example.org")
    assert [(e.kind, e.candidate_id, e.message_id) for e in events()] == [
        ("unsubscribe", sent.candidate_id, sent.message_id)
    ]
    assert stats(client, auth, sent.campaign_id)["unsubscribed"] == 1


def test_a_second_unsubscribe_is_harmless(client, auth, sent) -> None:
    url = sent.path(sent.tokens.unsubscribe_url(sent.candidate_id, sent.message_id))
    assert client.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    again = client.post(url, data={"List-Unsubscribe": "One-Click"})
    button = client.post(url)  # the confirmation page's button, pressed later

    assert again.status_code == 200 and button.status_code == 200
    assert len(events("unsubscribe")) == 1
    assert db.session.get(Candidate, sent.candidate_id).status == "unsubscribed"
    assert stats(client, auth, sent.campaign_id)["unsubscribed"] == 1
    assert "unsubscribed" in client.get(url).get_data(as_text=True).lower()


def test_an_unsubscribed_candidate_is_not_enrolled_by_a_later_rejection(client, auth, sent) -> None:
    url = sent.path(sent.tokens.unsubscribe_url(sent.candidate_id, sent.message_id))
    client.post(url, data={"List-Unsubscribe": "One-Click"})

    again = ats_post(
        client, {"type": "candidate.rejected", "candidate": {"email": "Ana@Example.org"}}
    )

    assert again.json["enrolled_campaign_ids"] == []
    active = db.session.scalars(select(Enrolment).where(Enrolment.status == "active")).all()
    assert active == []


def test_the_confirmation_button_unsubscribes_too(client, sent) -> None:
    url = sent.path(sent.tokens.unsubscribe_url(sent.candidate_id, sent.message_id))

    answer = client.post(url)

    assert answer.status_code == 200
    assert db.session.get(Candidate, sent.candidate_id).status == "unsubscribed"
    assert len(events("unsubscribe")) == 1


# --- machines ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_agent",
    [
        GOOGLE_PROXY,
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "Barracuda Sentinel (EE)",
        "python-requests/2.32.3",
    ],
)
def test_machine_opens_and_clicks_are_marked_and_left_out_of_stats(
    client, auth, sent, user_agent
) -> None:
    pixel = sent.path(sent.tokens.open_url(sent.message_id))
    link = sent.path(sent.tokens.click_url(sent.message_id, JOBS_URL))

    assert client.get(pixel, headers={"User-Agent": user_agent}).status_code == 200
    assert client.get(link, headers={"User-Agent": user_agent}).status_code == 302

    assert [(e.kind, e.machine) for e in events()] == [("open", True), ("click", True)]
    assert events()[0].user_agent == user_agent
    row = stats(client, auth, sent.campaign_id)
    assert (row["opened"], row["clicked"]) == (0, 0)

    # The person opening it later is counted, once, however often they look.
    client.get(pixel, headers={"User-Agent": HUMAN})
    client.get(pixel, headers={"User-Agent": HUMAN})
    client.get(link, headers={"User-Agent": HUMAN})
    row = stats(client, auth, sent.campaign_id)
    assert (row["opened"], row["clicked"]) == (1, 1)
    assert [e.machine for e in events()] == [True, True, False, False, False]


def test_stats_count_unique_candidates_per_step(app, client, auth, clock) -> None:
    ana = make_message(client, auth, clock, app, "ana@example.org")
    ats_post(client, {"type": "candidate.rejected", "candidate": {"email": "bo@example.org"}})
    clock.advance(timedelta(hours=1))
    create_due_messages(db.session, clock.now())
    bo_message = db.session.scalar(
        select(Message.id).join(Candidate).where(Candidate.email == "bo@example.org")
    )

    for message_id in (ana.message_id, ana.message_id, bo_message):
        client.get(ana.path(ana.tokens.open_url(message_id)), headers={"User-Agent": HUMAN})
    client.get(ana.path(ana.tokens.click_url(bo_message, JOBS_URL)), headers={"User-Agent": HUMAN})

    rows = client.get(f"/api/v1/campaigns/{ana.campaign_id}/stats", headers=auth).json["steps"]
    assert [(r["opened"], r["clicked"]) for r in rows] == [(2, 1), (0, 0)]
