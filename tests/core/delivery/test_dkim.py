"""DKIM: what the sender signs verifies with dkimpy against the published key, and nothing else."""

from __future__ import annotations

import base64
import logging
import random
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask
from sqlalchemy import select

from nurture.core.content.mime import build_mime
from nurture.core.delivery.dkim import (
    DkimError,
    DkimSigner,
    _relaxed,
    _relaxed_body,
    _split,
    dns_record,
    generate_key,
    parse_key,
    txt_value,
)
from nurture.core.delivery.scheduling import create_due_messages
from nurture.dev.embedded import SmtpCapture
from nurture.extensions import db
from nurture.models import Message
from nurture.tasks.sending import close_sender, send_messages
from tests.conftest import ats_post, auth_headers, make_app, require

SELECTOR, DOMAIN = "nurture1", "acme.example.com"
REQUIRED = {
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"mime-version",
    b"content-type",
}


@pytest.fixture(scope="module")
def key() -> tuple[str, str]:
    """A fresh 2048-bit key pair: (private PEM, public base64)."""
    return generate_key()


@pytest.fixture
def signer(key: tuple[str, str]) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, key[0])


def published(record: str, asked: list[bytes] | None = None) -> Callable[..., bytes]:
    """A dnsfunc for dkim.verify that answers with ``record`` (no network)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        if asked is not None:
            asked.append(name)
        return record.encode("ascii")

    return lookup


def build(**overrides) -> bytes:
    """A message as the sender builds it."""
    fields = {
        "from_name": "Jordan Lee",
        "from_email": f"jordan.lee@{DOMAIN}",
        "to_email": "maya@example.org",
        "reply_to": f"jordan.lee@{DOMAIN}",
        "subject": "Thank you for your time with Acme",
        "html": "<html><body><p>Hi Maya,</p>" + "<p>word " * 400 + "</p></body></html>",
        "text": "Hi Maya,\n\nThank you.\n",
        "message_id": f"<nurture.1.abc@{DOMAIN}>",
        "date": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        "unsubscribe_url": "https://nurture.example.com/u/token-one",
        "list_id": "Silver medalists <campaign-1.nurture.example.com>",
    }
    fields.update(overrides)
    return build_mime(**fields)


def signature_tags(message: bytes) -> dict[bytes, bytes]:
    """The tags of the first DKIM-Signature header."""
    header = re.search(rb"^DKIM-Signature:(.*?)\r\n(?![ \t])", message, re.S | re.M)
    assert header is not None
    value = re.sub(rb"\s+", b"", header.group(1))
    return dict(tag.split(b"=", 1) for tag in value.split(b";") if tag)


def test_a_signed_message_verifies_against_the_published_key(
    signer: DkimSigner, key: tuple[str, str]
) -> None:
    signed = signer.sign(build())
    asked: list[bytes] = []
    assert dkim.verify(signed, dnsfunc=published(txt_value(key[1]), asked))
    assert asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    tags = signature_tags(signed)
    assert tags[b"a"] == b"rsa-sha256" and tags[b"c"] == b"relaxed/relaxed"
    assert tags[b"d"] == DOMAIN.encode() and tags[b"s"] == SELECTOR.encode()
    assert REQUIRED <= set(tags[b"h"].split(b":"))
    assert signed.startswith(b"DKIM-Signature: ")


@pytest.mark.parametrize(
    ("what", "before", "after"),
    [
        ("subject", b"Subject: Thank you", b"Subject: Thank YOU"),
        ("unsubscribe link", b"/u/token-one>", b"/u/token-two>"),
        ("one-click header", b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Clicks"),
        ("from", b"From: Jordan Lee", b"From: Jordan Leigh"),
        ("body", b"Hi Maya,", b"Hi Mara,"),
    ],
)
def test_tampering_breaks_the_signature(
    signer: DkimSigner, key: tuple[str, str], what: str, before: bytes, after: bytes
) -> None:
    signed = signer.sign(build())
    assert before in signed, what
    assert not dkim.verify(signed.replace(before, after, 1), dnsfunc=published(txt_value(key[1])))


def test_an_added_header_breaks_the_signature(signer: DkimSigner, key: tuple[str, str]) -> None:
    """Oversigned headers: a second List-Unsubscribe, Subject or Reply-To cannot be slipped in."""
    lookup = published(txt_value(key[1]))
    signed = signer.sign(build(reply_to=None))
    assert dkim.verify(signed, dnsfunc=lookup)
    for added in (
        b"List-Unsubscribe: <https://evil.example.net/u>\r\n",
        b"Subject: Urgent: confirm your details\r\n",
        b"Reply-To: someone@evil.example.net\r\n",
    ):
        tampered = signed.replace(b"\r\nTo: ", b"\r\n" + added + b"To: ", 1)
        assert not dkim.verify(tampered, dnsfunc=lookup), added


def test_signed_bytes_keep_crlf_and_short_lines(signer: DkimSigner, key: tuple[str, str]) -> None:
    for message in (build(), build().replace(b"\r\n", b"\n")):
        signed = signer.sign(message)
        assert b"\n" not in signed.replace(b"\r\n", b"")
        assert b"\r" not in signed.replace(b"\r\n", b"")
        assert max(len(line) for line in signed.split(b"\r\n")) < 998
        assert dkim.verify(signed, dnsfunc=published(txt_value(key[1])))


def test_the_key_is_parsed_once_not_per_message(
    signer: DkimSigner, key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args, **kwargs) -> None:
        raise AssertionError("the key was parsed again")

    monkeypatch.setattr(serialization, "load_pem_private_key", refuse)
    for module in ("dkim", "dkim.crypto"):
        monkeypatch.setattr(f"{module}.parse_pem_private_key", refuse)
    for n in range(3):
        signed = signer.sign(build(subject=f"Message {n}"))
        assert dkim.verify(signed, dnsfunc=published(txt_value(key[1])))


def test_openssl_signs_not_dkimpys_pure_python_rsa(
    signer: DkimSigner, key: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature comes from cryptography, verifies, and covers what a replayer would edit."""

    def refuse(*args, **kwargs) -> None:
        raise AssertionError("dkimpy's pure-Python RSA was used")

    for module in ("dkim", "dkim.crypto"):
        monkeypatch.setattr(f"{module}.RSASSA_PKCS1_v1_5_sign", refuse)
    lookup = published(txt_value(key[1]))
    signed = signer.sign(build())
    assert dkim.verify(signed, dnsfunc=lookup)
    assert len(base64.b64decode(signature_tags(signed)[b"b"])) == signer.bits // 8 == 256
    for before, after in (
        (b"Subject: Thank you", b"Subject: Thank you!"),
        (b"From: Jordan Lee", b"From: Jordan Lea"),
        (
            b"List-Unsubscribe: <https://nurture.example.com/u/token-one>",
            b"List-Unsubscribe: <https://nurture.example.com/u/token-One>",
        ),
    ):
        assert before in signed, before
        assert not dkim.verify(signed.replace(before, after, 1), dnsfunc=lookup), before


def test_the_quick_parse_and_body_canonicalisation_are_dkimpys() -> None:
    """``_split`` and ``_relaxed_body`` are shortcuts: they must give what dkimpy's code gives."""
    head = build().split(b"\r\n\r\n", 1)[0]
    rng = random.Random(6376)
    pieces = [b"a", b"word", b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r", b"=20", b"\r\n "]
    bodies = [b"", b"\r\n", b"\r\n\r\n", b"x", b" ", b"x \t\r\n\r\n \r\n", b"\r\n\r\nx"]
    bodies += [b"".join(rng.choices(pieces, k=rng.randint(1, 80))) for _ in range(2000)]
    messages = [head, head + b"\r\n"]  # no body at all
    messages += [start + body for body in bodies for start in (head + b"\r\n\r\n", b"\r\n")]
    for message in messages:
        headers, rest = dkim.rfc822_parse(message)
        assert _split(message) == (headers, rest), message
        assert _relaxed_body(rest) == _relaxed().canonicalize_body(rest), rest


def test_the_public_key_is_what_openssl_derives(key: tuple[str, str]) -> None:
    require(shutil.which("openssl") is not None, "openssl")
    derived = subprocess.run(
        ["openssl", "pkey", "-pubout", "-outform", "DER"],
        input=key[0].encode(),
        capture_output=True,
        check=True,
    ).stdout
    assert base64.b64encode(derived).decode() == key[1]
    assert DkimSigner(SELECTOR, DOMAIN, key[0]).public_b64 == key[1]


def test_the_dns_record_is_split_into_255_character_strings() -> None:
    _, public = generate_key(4096)
    record = dns_record("s2026", "example.com", public)
    name, kind, rest = record.split(" ", 2)
    assert (name, kind) == ("s2026._domainkey.example.com", "TXT")
    strings = re.findall(r'"([^"]*)"', rest)
    assert len(strings) == 3 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={public}"
    short = dns_record("s1", "example.com", "QUJD")
    assert short == 's1._domainkey.example.com TXT "v=DKIM1; k=rsa; p=QUJD"'


def test_nothing_configured_means_no_signing(caplog: pytest.LogCaptureFixture) -> None:
    assert DkimSigner.from_config({}) is None
    assert DkimSigner.from_config({"DKIM_SELECTOR": "", "DKIM_PRIVATE_KEY_FILE": None}) is None
    with caplog.at_level(logging.WARNING):
        assert DkimSigner.from_config({"DKIM_SELECTOR": "s1", "DKIM_DOMAIN": DOMAIN}) is None
    assert "NURTURE_DKIM_PRIVATE_KEY" in caplog.text


def test_the_key_comes_from_an_env_value_or_a_file(key: tuple[str, str], tmp_path: Path) -> None:
    path = tmp_path / "dkim.pem"
    path.write_text(key[0])
    base = {"DKIM_SELECTOR": SELECTOR, "DKIM_DOMAIN": DOMAIN}
    one_line_env = key[0].strip().replace("\n", "\\n")  # as an env file often holds it
    for settings in (
        {"DKIM_PRIVATE_KEY": key[0]},
        {"DKIM_PRIVATE_KEY": one_line_env},
        {"DKIM_PRIVATE_KEY": key[0].replace("\n", "\r\n")},
        {"DKIM_PRIVATE_KEY_FILE": str(path)},
    ):
        signer = DkimSigner.from_config({**base, **settings})
        assert signer is not None and signer.public_b64 == key[1]
    with pytest.raises(DkimError, match="not both"):
        DkimSigner.from_config(
            {**base, "DKIM_PRIVATE_KEY": key[0], "DKIM_PRIVATE_KEY_FILE": str(path)}
        )
    with pytest.raises(DkimError, match="cannot read"):
        DkimSigner.from_config({**base, "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")})


def test_unusable_keys_and_names_are_refused(key: tuple[str, str]) -> None:
    with pytest.raises(DkimError, match="PEM"):
        parse_key("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DkimError, match="PEM"):
        parse_key("not a key at all")
    ed = ed25519.Ed25519PrivateKey.generate()
    pkcs8 = serialization.PrivateFormat.PKCS8
    with pytest.raises(DkimError, match="not an RSA key"):
        parse_key(ed.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    rsa_key = serialization.load_pem_private_key(key[0].encode(), None)
    for layout in (pkcs8, serialization.PrivateFormat.TraditionalOpenSSL):
        locked = rsa_key.private_bytes(
            serialization.Encoding.PEM, layout, serialization.BestAvailableEncryption(b"secret")
        )
        with pytest.raises(DkimError, match="is encrypted; give it without a passphrase"):
            parse_key(locked)
    require(shutil.which("openssl") is not None, "openssl")  # cryptography makes no 512-bit keys
    weak = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with pytest.raises(DkimError, match="512 bits"):
        parse_key(weak)
    with pytest.raises(DkimError, match="selector"):
        DkimSigner("bad selector\r\nBcc: x", DOMAIN, key[0])
    with pytest.raises(DkimError, match="domain"):
        DkimSigner(SELECTOR, "-example.com", key[0])
    with pytest.raises(DkimError):
        generate_key(512)


def test_the_key_never_shows_in_a_repr(signer: DkimSigner) -> None:
    assert repr(signer) == f"DkimSigner(selector='{SELECTOR}', domain='{DOMAIN}')"


@pytest.fixture
def dkim_app(
    sqlite_url: str, clock, smtp: SmtpCapture, redis_url: str, tmp_path: Path, key: tuple[str, str]
):
    """An app that signs with ``key``, sending to the real SMTP server."""
    path = tmp_path / "dkim.pem"
    path.write_text(key[0])
    app = make_app(
        sqlite_url,
        clock,
        SMTP_URL=smtp.url,
        REDIS_URL=redis_url,
        SENDER_EMAIL=f"talent@{DOMAIN}",
        DKIM_SELECTOR=SELECTOR,
        DKIM_DOMAIN=DOMAIN,
        DKIM_PRIVATE_KEY_FILE=str(path),
    )
    with app.app_context():
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


def test_mail_sent_through_smtp_verifies_against_the_published_key(
    dkim_app: Flask, smtp: SmtpCapture, key: tuple[str, str]
) -> None:
    client = dkim_app.test_client()
    headers = auth_headers(dkim_app, "editor")
    drip = {
        "name": "Follow-up",
        "entry": {"ats_event": "candidate.rejected"},
        "steps": [{"delay": "PT0S", "template": "rejection_followup"}],
    }
    campaign = client.post("/api/v1/campaigns", json=drip, headers=headers).json["id"]
    client.post(f"/api/v1/campaigns/{campaign}/activate", headers=headers)
    person = {
        "email": "maya@example.org",
        "first_name": "Maya",
        "role": "Backend Engineer",
        "strengths": "Clear thinking.\nGood questions.",
        "recruiter_email": f"jo@{DOMAIN}",
    }
    assert ats_post(client, {"type": "candidate.rejected", "candidate": person}).status_code == 200
    create_due_messages(db.session, dkim_app.extensions["nurture.clock"].now())
    ids = list(db.session.scalars(select(Message.id)))
    assert send_messages(ids) == {"sent": 1}

    (received,) = smtp.messages
    assert received.data.startswith(b"DKIM-Signature: ")
    asked: list[bytes] = []
    assert dkim.verify(received.data, dnsfunc=published(txt_value(key[1]), asked))
    assert asked == [f"{SELECTOR}._domainkey.{DOMAIN}.".encode()]
    message = received.as_email()
    assert message["List-Unsubscribe"] and message["Subject"].startswith("Thank you")
    tampered = received.data.replace(b"Subject: Thank you", b"Subject: Thanks", 1)
    assert not dkim.verify(tampered, dnsfunc=published(txt_value(key[1])))


def test_without_dkim_settings_mail_goes_out_unsigned(
    sqlite_url: str, clock, smtp: SmtpCapture, redis_url: str
) -> None:
    from nurture.tasks.sending import sender_for

    app = make_app(sqlite_url, clock, SMTP_URL=smtp.url, REDIS_URL=redis_url)
    with app.app_context():
        try:
            assert sender_for(app).dkim is None
        finally:
            close_sender(app)
            db.session.remove()
            db.engine.dispose()


def test_the_cli_generates_a_key_and_prints_a_record_dkim_accepts(
    app: Flask, tmp_path: Path
) -> None:
    out = tmp_path / "keys" / "dkim.pem"
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["dkim", "generate", "--selector", SELECTOR, "--domain", DOMAIN, "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert f"NURTURE_DKIM_PRIVATE_KEY_FILE={out}" in made.output
    assert f"NURTURE_DKIM_SELECTOR={SELECTOR}" in made.output
    generated = next(line.strip() for line in made.output.splitlines() if "._domainkey." in line)

    again = runner.invoke(
        args=["dkim", "generate", "--selector", SELECTOR, "--domain", DOMAIN, "--out", str(out)]
    )
    assert again.exit_code != 0 and "exists" in again.output

    assert runner.invoke(args=["dkim", "record"]).exit_code != 0  # not configured yet
    app.config.update(DKIM_SELECTOR=SELECTOR, DKIM_DOMAIN=DOMAIN, DKIM_PRIVATE_KEY_FILE=str(out))
    shown = runner.invoke(args=["dkim", "record"])
    assert shown.exit_code == 0, shown.output
    record = shown.output.strip()
    assert record == generated
    assert record.startswith(f"{SELECTOR}._domainkey.{DOMAIN} TXT ")

    signer = DkimSigner.from_config(app.config)
    assert signer is not None
    value = "".join(re.findall(r'"([^"]*)"', record))  # what a resolver hands back
    assert dkim.verify(signer.sign(build()), dnsfunc=published(value))
