"""Test sends from the template editor are DKIM-signed as campaign mail is, through real SMTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import dkim
import pytest
from flask import Flask
from flask.testing import FlaskClient

from nurture.core.accounts.users import create_user
from nurture.core.delivery.dkim import generate_key, txt_value
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from tests.conftest import running_app

SELECTOR, DOMAIN = "nurture1", "acme.example.com"
PASSWORD = "correct horse battery staple"
STARTER = "rejection_followup"


@pytest.fixture(scope="module")
def key() -> tuple[str, str]:
    """A fresh 2048-bit key pair: (private PEM, public base64)."""
    return generate_key()


def published(record: str) -> Callable[..., bytes]:
    """A dnsfunc for dkim.verify that answers with ``record`` (no network)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return record.encode("ascii")

    return lookup


def editor_app(
    sqlite_url: str, clock, smtp: SmtpCapture, redis_url: str, **dkim_settings: str
) -> AbstractContextManager[Flask]:
    """The app sending to the real SMTP server, with these ``DKIM_*`` settings."""
    return running_app(
        sqlite_url,
        clock,
        SMTP_URL=smtp.url,
        REDIS_URL=redis_url,
        SENDER_EMAIL=f"talent@{DOMAIN}",
        **dkim_settings,
    )


@pytest.fixture
def signing_app(
    sqlite_url: str, clock, smtp: SmtpCapture, redis_url: str, tmp_path: Path, key: tuple[str, str]
) -> Iterator[Flask]:
    """An app whose campaign mail is signed with ``key``, sending to the real SMTP server."""
    path = tmp_path / "dkim.pem"
    path.write_text(key[0])
    with editor_app(
        sqlite_url,
        clock,
        smtp,
        redis_url,
        DKIM_SELECTOR=SELECTOR,
        DKIM_DOMAIN=DOMAIN,
        DKIM_PRIVATE_KEY_FILE=str(path),
    ) as app:
        yield app


def signed_in(app: Flask) -> FlaskClient:
    """A test client signed in through the login form as an editor."""
    create_user(
        db.session, "editor@example.com", PASSWORD, "editor", app.extensions["nurture.clock"].now()
    )
    db.session.commit()
    client = app.test_client()
    answer = client.post(
        "/admin/login",
        data={
            "email": "editor@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_of(client, "/admin/login"),
        },
    )
    assert answer.status_code == 302
    return client


def csrf_of(client: FlaskClient, path: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).text)[1]


def send_a_test(client: FlaskClient, to: str = "me@example.com"):
    """Press "Send a test" on the starter's page, as an editor would."""
    token = csrf_of(client, f"/admin/templates/starter/{STARTER}")
    return client.post(
        f"/admin/templates/starter/{STARTER}/test",
        data={"csrf_token": token, "to": to, "candidate": ""},
    )


def test_a_test_send_carries_a_dkim_signature_that_verifies(
    signing_app: Flask, smtp: SmtpCapture, key: tuple[str, str]
) -> None:
    client = signed_in(signing_app)
    assert send_a_test(client).status_code == 302
    (received,) = smtp.messages
    assert received.rcpt_tos == ["me@example.com"]
    assert received.data.startswith(b"DKIM-Signature: ")
    lookup = published(txt_value(key[1]))
    assert dkim.verify(received.data, dnsfunc=lookup)
    message = received.as_email()
    assert message["Subject"].startswith("[Test] ") and message["X-Nurture-Test"]
    tags = re.sub(rb"\s+", b"", received.data.split(b"\r\n\r\n", 1)[0])
    assert b"d=" + DOMAIN.encode() + b";" in tags and b"s=" + SELECTOR.encode() + b";" in tags
    for before, after in (
        (b"Subject: [Test] ", b"Subject: [Tested] "),
        (b"List-Unsubscribe: <", b"List-Unsubscribe: <x"),
    ):
        assert before in received.data, before
        assert not dkim.verify(received.data.replace(before, after, 1), dnsfunc=lookup), before

    # The signer is built once and kept: the next test send reuses it.
    signer = signing_app.extensions["nurture.dkim"]
    assert send_a_test(client).status_code == 302
    assert signing_app.extensions["nurture.dkim"] is signer
    assert dkim.verify(smtp.messages[-1].data, dnsfunc=lookup)


def test_without_dkim_settings_a_test_send_goes_out_unsigned(
    sqlite_url: str, clock, smtp: SmtpCapture, redis_url: str
) -> None:
    with editor_app(sqlite_url, clock, smtp, redis_url) as app:
        assert send_a_test(signed_in(app)).status_code == 302
    (received,) = smtp.messages
    assert b"DKIM-Signature" not in received.data


def test_an_unusable_dkim_key_stops_the_test_send(
    sqlite_url: str, clock, smtp: SmtpCapture, redis_url: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-key.pem"
    with editor_app(
        sqlite_url,
        clock,
        smtp,
        redis_url,
        DKIM_SELECTOR=SELECTOR,
        DKIM_DOMAIN=DOMAIN,
        DKIM_PRIVATE_KEY_FILE=str(missing),
    ) as app:
        answer = send_a_test(signed_in(app))
        assert answer.status_code == 500
        assert "DKIM is set up but unusable" in answer.text and str(missing) in answer.text
        assert "nurture.dkim" not in app.extensions  # retried once the key file is there
    assert smtp.messages == []
