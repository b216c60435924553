"""Talking to the SMTP relay: one connection reused for many messages."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from nurture.services.errors import ValidationError

TRANSIENT = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    ConnectionError,
    TimeoutError,
    OSError,
)


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect, parsed from ``NURTURE_SMTP_URL``."""

    host: str
    port: int
    security: str  # "plain", "starttls" or "tls"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpSettings:
        """Parse ``smtp://host:port``, ``smtp+starttls://user:pass@host:587`` or ``smtps://…``."""
        parts = urlsplit(url)
        schemes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
        if parts.scheme not in schemes or not parts.hostname:
            raise ValidationError(
                "bad SMTP URL",
                {
                    "NURTURE_SMTP_URL": "use smtp://host:port, smtp+starttls://user:pass@host:587 "
                    "or smtps://user:pass@host:465"
                },
            )
        security, default_port = schemes[parts.scheme]
        return cls(
            host=parts.hostname,
            port=parts.port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )


class SmtpTransport:
    """A lazily opened SMTP connection that reconnects once when the server dropped it."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None
        self.connections_opened = 0

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
        conn.ehlo_or_helo_if_needed()
        if s.username:
            conn.login(s.username, s.password or "")
        self.connections_opened += 1
        return conn

    def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        """Send one message; raises smtplib errors for the caller to classify."""
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.sendmail(envelope_from, [recipient], data)
        except smtplib.SMTPServerDisconnected:
            # An idle connection the server closed: open a new one and try once more.
            self.close()
            self._conn = self._connect()
            self._conn.sendmail(envelope_from, [recipient], data)

    def reset(self) -> None:
        """After a refused message, make the connection ready for the next one."""
        if self._conn is not None:
            try:
                self._conn.rset()
            except smtplib.SMTPException:
                self.close()

    def close(self) -> None:
        """Say QUIT if we can; forget the connection either way."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
