"""Step conditions end to end: the resend to non-openers, with a real RQ worker and real SMTP.

Opens arrive the way they do in life: the candidate's phone fetches the tracking pixel from the
mail that the SMTP server received. A mail-privacy proxy's fetch is not a human open.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Candidate, Message
from tests.conftest import running_app
from tests.e2e.test_timing_e2e import drip, reject, tick_and_work

PHONE = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile"}
# What Apple Mail Privacy Protection's proxy sends: it fetches every image of every mail.
APPLE_PROXY = {"User-Agent": "Mozilla/5.0"}


@pytest.fixture
def system(database_url, clock, smtp: SmtpCapture, redis_url):
    with running_app(database_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url) as app:
        yield app


def received(smtp: SmtpCapture) -> dict[str, list[email.message.EmailMessage]]:
    mails: dict[str, list] = {}
    for captured in smtp.messages:
        parsed = email.message_from_bytes(captured.data, policy=email.policy.default)
        mails.setdefault(captured.rcpt_tos[0], []).append(parsed)
    return mails


def pixel(mail: email.message.EmailMessage) -> str:
    html = mail.get_body(("html",)).get_content()
    url = next(u for u in re.findall(r'src="([^"]+)"', html) if "/o/" in u)
    return url.removeprefix("https://nurture.test")


def test_a_non_opener_gets_the_resend_and_an_opener_does_not(
    system: Flask, smtp: SmtpCapture, clock
) -> None:
    drip(
        system,
        [
            {"delay": "PT0S", "template": "talent_network_invite"},
            {
                "delay": "P3D",
                "template": "talent_network_invite",
                "subject": "In case you missed it: join our talent network",
                "condition": "previous_not_opened",
            },
        ],
    )
    for name in ("ana", "bo", "cy"):
        reject(system, f"{name}@example.org", first_name=name.title())
    assert tick_and_work(system) == 3
    first = received(smtp)
    assert sorted(first) == ["ana@example.org", "bo@example.org", "cy@example.org"]

    # Apple's proxy fetches Cy's pixel on delivery; an hour later Ana opens hers on her phone.
    client = system.test_client()
    clock.advance(timedelta(seconds=30))
    assert client.get(pixel(first["cy@example.org"][0]), headers=APPLE_PROXY).status_code == 200
    clock.advance(timedelta(hours=1))
    assert client.get(pixel(first["ana@example.org"][0]), headers=PHONE).status_code == 200

    # Two days: too early for anyone. Three: Bo and Cy (no human open) get the resend.
    clock.advance(timedelta(days=2))
    tick_and_work(system)
    assert len(smtp.messages) == 3
    clock.advance(timedelta(days=1))
    tick_and_work(system)
    mails = received(smtp)
    assert [len(mails[a]) for a in ("ana@example.org", "bo@example.org", "cy@example.org")] == [
        1,
        2,
        2,
    ]
    assert mails["bo@example.org"][1]["Subject"] == (
        "In case you missed it: join our talent network"
    )
    # Ana's step is skipped with the reason, not left waiting; nobody is mailed twice later.
    db.session.expire_all()
    ana_messages = db.session.scalars(
        select(Message)
        .join(Candidate)
        .where(Candidate.email == "ana@example.org")
        .order_by(Message.id)
    ).all()
    assert [(m.state, m.error) for m in ana_messages] == [
        ("sent", ""),
        ("skipped", "condition previous_not_opened not met"),
    ]
    clock.advance(timedelta(days=7))
    tick_and_work(system)
    assert len(smtp.messages) == 5
