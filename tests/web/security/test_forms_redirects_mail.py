"""CSRF on every form, no open redirect, no header injection into the mail we send, and secrets
only from the environment."""

from __future__ import annotations

import email
import email.policy
import os
from urllib.parse import urlsplit

import pytest
from flask import Flask

from nurture.core.tokens import Tokens
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Message
from tests.conftest import ats_post, auth_headers, running_app
from tests.web.security.conftest import PASSWORD, as_user, csrf_of, sign_in
from tests.web.security.test_routes import routes

# --- CSRF ----------------------------------------------------------------------------------


def test_every_admin_post_without_its_csrf_token_is_refused(app: Flask, people) -> None:
    admin = as_user(app, "admin")
    posts = [(e, p) for e, m, p in routes(app) if m == "POST" and p.startswith("/admin/")]
    assert len(posts) > 30
    for endpoint, path in posts:
        if endpoint == "admin.auth.login":
            answer = app.test_client().post(path, data={"email": "admin@example.com"})
        else:
            answer = admin.post(path, data={"action": "save"})
        assert answer.status_code == 400, (path, answer.status_code)
        assert "CSRF" in answer.text or "csrf" in answer.text


def test_a_csrf_token_of_another_session_is_refused(app: Flask, people) -> None:
    mine = sign_in(app, "editor")
    theirs = csrf_of(sign_in(app, "viewer").get("/admin/account").text)
    answer = mine.post("/admin/suppressions", data={"csrf_token": theirs, "emails": "a@b.co"})
    assert answer.status_code == 400


def _candidate(app: Flask) -> tuple[Candidate, str]:
    now = app.extensions["nurture.clock"].now()
    candidate = Candidate(email="ana@example.org", first_name="Ana", created_at=now, updated_at=now)
    db.session.add(candidate)
    db.session.commit()
    url = Tokens.from_config(app.config).preferences_url(candidate.id, None)
    return candidate, url.split("/p/")[1]


def test_every_preference_form_needs_its_own_form_token(app: Flask) -> None:
    """The preference page has no session: each form carries a signed token of its own."""
    candidate, token = _candidate(app)
    client = app.test_client()
    for action in ("topics", "pause", "unpause", "tracking", "stay", "download", "delete"):
        answer = client.post(f"/p/{token}/{action}", data={})
        assert answer.status_code == 400, action
        forged = client.post(f"/p/{token}/{action}", data={"form_token": "x.y.z"})
        assert forged.status_code == 400, action
        other_site = client.post(
            f"/p/{token}/{action}", data={}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert other_site.status_code == 403, action
    db.session.refresh(candidate)
    assert candidate.status == "active"


# --- redirects -------------------------------------------------------------------------------

BYPASSES = [
    "//evil.com",
    "///evil.com",
    "////evil.com/",
    "/\\evil.com",
    "\\\\evil.com",
    "/\\/evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "/%09/evil.com",
    "/%0a/evil.com",
    "/%2F/evil.com",
    "/%2f%2fevil.com",
    "/%5Cevil.com",
    "/%5C%5Cevil.com",
    "https://evil.com",
    "http:evil.com",
    "https:/evil.com",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.com",
    "/admin@evil.com",
    "/admin\\@evil.com",
    "/\x00/evil.com",
    "/ /evil.com",
    " //evil.com",
    "/%20//evil.com",
    "/.evil.com",
    "//evil.com/admin/",
    "/%252F%252Fevil.com",
]


@pytest.mark.parametrize("target", BYPASSES)
def test_no_next_parameter_leads_off_site(app: Flask, target: str) -> None:
    from nurture.web.admin.access import safe_next

    with app.test_request_context():
        assert safe_next(target) == "/admin/"


def test_admin_paths_are_followed_after_sign_in(app: Flask, people) -> None:
    from nurture.web.admin.access import safe_next

    with app.test_request_context():
        assert safe_next("/admin/candidates?q=ana") == "/admin/candidates?q=ana"
        assert (
            safe_next("/admin/templates/starter/job_alert") == "/admin/templates/starter/job_alert"
        )
    for target, lands in (("/admin/segments", "/admin/segments"), ("//evil.com", "/admin/")):
        client = app.test_client()
        token = csrf_of(client.get("/admin/login").text)
        answer = client.post(
            "/admin/login",
            query_string={"next": target},
            data={"email": "viewer@example.com", "password": PASSWORD, "csrf_token": token},
        )
        location = urlsplit(answer.headers["Location"])
        assert answer.status_code == 302 and location.netloc in ("", "localhost")
        assert location.path == lands


def test_the_click_redirect_goes_only_where_the_mail_said(app: Flask, people) -> None:
    candidate, _ = _candidate(app)
    now = app.extensions["nurture.clock"].now()
    drip = {"name": "D", "steps": [{"template": "rejection_followup"}]}
    created = app.test_client().post(
        "/api/v1/campaigns", json=drip, headers={"Authorization": f"Bearer {people['editor']}"}
    )
    campaign = created.json
    message = Message(
        candidate_id=candidate.id,
        campaign_id=campaign["id"],
        step_id=campaign["steps"][0]["id"],
        state="sent",
        queued_at=now,
        sent_at=now,
    )
    db.session.add(message)
    db.session.commit()
    tokens = Tokens.from_config(app.config)
    client = app.test_client()
    good = tokens.click_url(message.id, "https://careers.example.com/jobs/1")
    answer = client.get(good.removeprefix(tokens.base_url))
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://careers.example.com/jobs/1"
    forged = Tokens("another secret", tokens.base_url).click_url(message.id, "https://evil.com")
    assert client.get(forged.removeprefix(tokens.base_url)).status_code == 404
    for url in ("javascript:alert(1)", "//evil.com", "data:text/html,x"):
        ours = tokens.click_url(message.id, url)  # even a bad URL we signed ourselves
        assert client.get(ours.removeprefix(tokens.base_url)).status_code == 404, url
    tampered = good[:-3] + ("aaa" if not good.endswith("aaa") else "bbb")
    assert client.get(tampered.removeprefix(tokens.base_url)).status_code == 404


# --- header injection ------------------------------------------------------------------------


def test_crlf_in_names_and_subjects_adds_no_header_to_the_mail(
    sqlite_url, clock, smtp: SmtpCapture, redis_url
) -> None:
    from nurture.core.delivery.scheduling import create_due_messages
    from nurture.tasks.sending import send_messages

    with running_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        client = app.test_client()
        headers = auth_headers(app, "editor")
        campaign = {
            "name": "Thanks\r\nBcc: list@evil.example",
            "entry": {"ats_event": "candidate.rejected"},
            "steps": [
                {
                    "template": "rejection_followup",
                    "subject": "Thank you, {{ candidate.first_name }}\r\nX-Injected: subject",
                }
            ],
        }
        created = client.post("/api/v1/campaigns", json=campaign, headers=headers)
        assert created.status_code == 201, created.json
        client.post(f"/api/v1/campaigns/{created.json['id']}/activate", headers=headers)
        person = {
            "email": "ana@example.org",
            "first_name": "Ana\r\nBcc: evil@example.com",
            "last_name": "Lima\nX-Injected: name",
            "recruiter_name": "Rae\r\nX-Injected: from",
            "recruiter_email": "rae@example.com",
            "role": "Engineer\r\nX-Injected: role",
        }
        answer = ats_post(client, {"type": "candidate.rejected", "candidate": person})
        assert answer.status_code == 200, answer.json
        create_due_messages(db.session, clock.now())
        ids = [m.id for m in db.session.query(Message)]
        assert send_messages(ids) == {"sent": 1}
        (mail,) = smtp.messages
        assert mail.rcpt_tos == ["ana@example.org"]
        parsed = email.message_from_bytes(mail.data, policy=email.policy.default)
        assert "X-Injected" not in parsed and "Bcc" not in parsed
        assert "\n" not in str(parsed["Subject"]) and str(parsed["Subject"]).startswith(
            "Thank you, Ana Bcc: evil@example.com"
        )
        assert len(parsed.get_all("From")) == 1 and "rae@example.com" in str(parsed["From"])
        for name, value in parsed.items():
            assert "\r" not in value and "\n" not in value, name


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_has_a_default_outside_the_test_settings(tmp_path, monkeypatch) -> None:
    from nurture import create_app
    from nurture.config import Config, TestConfig

    for name in ("SECRET_KEY", "ATS_SECRET", "BOUNCE_WEBHOOK_SECRET", "DKIM_PRIVATE_KEY"):
        assert getattr(Config, name) is None, name
    assert TestConfig.SECRET_KEY  # the tests' own
    for variable in [v for v in os.environ if v.startswith("NURTURE_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("NURTURE_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="NURTURE_SECRET_KEY is not set"):
        create_app(Config)
