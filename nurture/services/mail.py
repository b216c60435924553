"""Building the MIME message a candidate receives: headers, both parts, CRLF on the wire."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import Any

_UTF8_QP = Charset("utf-8")
_UTF8_QP.header_encoding = QP
_UTF8_QP.body_encoding = QP

# compat32 is several times cheaper than the default policy and, with CRLF and a 78-column
# fold, produces the same RFC 5322 bytes for what nurture writes.
_WIRE = policy.compat32.clone(linesep="\r\n", max_line_length=78)


@dataclass(frozen=True)
class MailSettings:
    """Who the mail is from and what every footer and header must carry."""

    company_name: str
    postal_address: str
    careers_url: str
    talent_network_url: str
    sender_name: str
    sender_email: str
    list_id_domain: str
    base_url: str

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MailSettings:
        """Read the ``NURTURE_*`` settings."""
        return cls(
            company_name=config["COMPANY_NAME"],
            postal_address=config["POSTAL_ADDRESS"],
            careers_url=config["CAREERS_URL"],
            talent_network_url=config["TALENT_NETWORK_URL"],
            sender_name=config["SENDER_NAME"],
            sender_email=config["SENDER_EMAIL"],
            list_id_domain=config["LIST_ID_DOMAIN"],
            base_url=config["BASE_URL"].rstrip("/"),
        )

    @property
    def domain(self) -> str:
        """The domain used for Message-IDs."""
        return self.sender_email.rpartition("@")[2] or "nurture.invalid"


def one_line(value: str) -> str:
    """Collapse a header value to one line, so no input can inject a header."""
    return " ".join(str(value).split())


def new_message_id(domain: str, message_pk: int) -> str:
    """A globally unique Message-ID that still says which ledger row it is."""
    return f"<nurture.{message_pk}.{secrets.token_hex(8)}@{domain}>"


def _header(value: str) -> str | Header:
    value = one_line(value)
    return value if value.isascii() else Header(value, _UTF8_QP)


def build_mime(
    *,
    from_name: str,
    from_email: str,
    to_email: str,
    reply_to: str | None,
    subject: str,
    html: str,
    text: str,
    message_id: str,
    date: datetime,
    unsubscribe_url: str,
    list_id: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The wire bytes of a ``multipart/alternative`` message (CRLF, lines under 998 octets)."""
    message = MIMEMultipart("alternative")
    message["From"] = formataddr((one_line(from_name), from_email), charset="utf-8")
    message["To"] = to_email
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = _header(subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["List-Id"] = _header(list_id)
    for name, value in (headers or {}).items():
        message[one_line(name)] = _header(value)
    message.attach(MIMEText(text, "plain", _UTF8_QP))
    message.attach(MIMEText(html, "html", _UTF8_QP))
    return message.as_bytes(policy=_WIRE)
