"""The MIME a candidate receives: parts, headers, encodings and line lengths."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from nurture.core.content.mime import build_mime

WHEN = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def build(**overrides) -> bytes:
    fields = {
        "from_name": "Jordan Lee",
        "from_email": "jordan@acme.example.com",
        "to_email": "ana@example.org",
        "reply_to": "jordan@acme.example.com",
        "subject": "Thank you for your time with Acme",
        "html": "<html><body><p>Hi Ana,</p></body></html>",
        "text": "Hi Ana,\n\nThanks.\n",
        "message_id": "<nurture.1.abc@acme.example.com>",
        "date": WHEN,
        "unsubscribe_url": "https://nurture.example.com/u/token",
        "list_id": "Silver medalists <campaign-1.nurture.example.com>",
    }
    fields.update(overrides)
    return build_mime(**fields)


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_a_well_formed_multipart_alternative() -> None:
    data = build()
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert plain.get_content().replace("\r\n", "\n") == "Hi Ana,\n\nThanks.\n"
    assert "<p>Hi Ana,</p>" in html.get_content()
    assert message["Date"] == "Mon, 02 Mar 2026 09:00:00 +0000"
    assert message["List-Unsubscribe"] == "<https://nurture.example.com/u/token>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    assert not message.defects and not any(part.defects for part in message.walk())


def test_utf8_headers_and_bodies_round_trip() -> None:
    message = parse(
        build(
            from_name="Zoë Ångström",
            subject="Merci, Chén — à bientôt 🙂",
            text="Grüße aus Köln\n",
            html="<p>Straße</p>",
            list_id="Équipe <campaign-2.nurture.example.com>",
        )
    )
    assert message["From"].addresses[0].display_name == "Zoë Ångström"
    assert str(message["Subject"]) == "Merci, Chén — à bientôt 🙂"
    assert "Équipe" in str(message["List-Id"])
    plain, html = message.iter_parts()
    assert plain.get_content().strip() == "Grüße aus Köln"
    assert "Straße" in html.get_content()


def test_no_line_reaches_998_octets_even_for_huge_html() -> None:
    data = build(html="<p>" + "x" * 5000 + "</p>", subject="word " * 60)
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    message = parse(data)
    assert "x" * 5000 in message.get_body(("html",)).get_content()
    assert str(message["Subject"]) == ("word " * 60).strip()


def test_header_injection_is_impossible() -> None:
    data = build(
        subject="Hello\r\nBcc: victim@example.org",
        from_name="Eve\nBcc: x@example.org",
        list_id="List\r\nX-Evil: 1 <c.example.com>",
    )
    message = parse(data)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert "Bcc: victim@example.org" in str(message["Subject"])


def test_every_message_gets_its_own_boundary() -> None:
    first, second = parse(build()), parse(build())
    assert first.get_boundary() != second.get_boundary()
