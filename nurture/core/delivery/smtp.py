"""Talking to the SMTP relay: one connection reused for many messages, and what failures mean.

Duplicates: within one call a message goes out at most once; only a failure *before any of its
content went out* (an idle connection the relay closed) is retried at once, on a fresh
connection. If the connection breaks while the content is being sent, the end-of-data mark
never arrived whole and the relay cannot have accepted it: an ordinary transient failure. If
the whole message went out and no reply came back, the outcome is unknown
(:class:`DeliveryUnknown`): the relay may have queued it (RFC 1047) or dropped it. No SMTP
client can tell these apart; the sending service retries (losing mail is the worse fault),
with the same Message-ID so providers that de-duplicate by it show one mail.
"""

from __future__ import annotations

import random
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import unquote, urlsplit

from nurture.core.errors import ValidationError


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


class DeliveryUnknown(smtplib.SMTPServerDisconnected):
    """The relay was handed the whole message but its reply never came: it may have taken it."""


@dataclass(frozen=True)
class Failure:
    """What a failed send means: for the message, for the recipient's mailbox, for the relay."""

    transient: bool  # worth trying again later
    code: int | None  # the SMTP reply code, when the relay answered at all
    text: str  # the reply text or the connection problem, for the message's error column
    # What it says about the recipient's mailbox: "hard" (gone), "soft" (full), "" (nothing).
    bounce: str = ""
    # A fault of the relay or the connection rather than of this recipient: the circuit breaker
    # counts these.
    relay: bool = False
    # The relay may have accepted the message although we saw no reply.
    unknown: bool = False


_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def _reply_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _bounce_kind(code: int, text: str) -> str:
    """Whether a refusal is about the mailbox: "hard", "soft" (mailbox full) or "" (policy etc.)."""
    enhanced = _ENHANCED.search(text)
    if enhanced:
        subject, detail = enhanced.group(2), enhanced.group(3)
        if subject == "1":  # X.1.x: addressing (no such user, bad domain)
            return "hard" if code >= 500 else ""
        if subject == "2" and detail == "2":  # X.2.2: mailbox full
            return "soft"
        if subject == "2":  # X.2.x: mailbox disabled or gone; a 4xx (greylisting) says little
            return "hard" if code >= 500 else ""
        return ""  # X.3 system, X.4 network, X.5 protocol, X.6 content, X.7 policy: not the address
    if code in (452, 552):  # "insufficient / exceeded storage": a full mailbox
        return "soft"
    if code in (550, 551, 553):  # mailbox unavailable, user not local, mailbox name not allowed
        return "hard"
    return ""


def _about_mailbox(code: int, text: str) -> bool:
    enhanced = _ENHANCED.search(text)
    if enhanced:
        return enhanced.group(2) in ("1", "2")
    return code in (450, 452)


def classify(exc: BaseException) -> Failure:
    """Turn an exception from :meth:`SmtpTransport.send` into what it means for the message."""
    if isinstance(exc, DeliveryUnknown):
        return Failure(True, None, str(exc), relay=True, unknown=True)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, raw = next(iter(exc.recipients.values()), (0, b""))
        text = _reply_text(raw)
        bounce = _bounce_kind(code, text)
        # A full mailbox may empty: retry it (and count it as a soft bounce) even after a 552.
        transient = code < 500 or bounce == "soft"
        return Failure(transient, code, f"{code} {text}", bounce=bounce, relay=code == 421)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPAuthenticationError):
        # The relay refuses *us* (sender not allowed, bad login): a setup problem to fix, not a
        # bounce; the message waits and the breaker tells the admin.
        text = _reply_text(exc.smtp_error)
        return Failure(True, exc.smtp_code, f"{exc.smtp_code} {text}", relay=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        code, text = exc.smtp_code, _reply_text(exc.smtp_error)
        bounce = _bounce_kind(code, text) if code >= 400 else ""
        transient = code < 500 or bounce == "soft"
        relay = code == 421 or (400 <= code < 500 and not _about_mailbox(code, text))
        if isinstance(exc, smtplib.SMTPHeloError) or code < 400:
            transient, relay = True, True
        return Failure(transient, code, f"{code} {text}", bounce=bounce, relay=relay)
    # Refused or dropped connections, timeouts, TLS trouble: the relay, not the recipient.
    return Failure(True, None, f"{type(exc).__name__}: {exc}", relay=True)


class SmtpTransport:
    """A lazily opened SMTP connection, reused for every message (across batches too), that
    reconnects once when the server dropped it and pipelines the envelope where it may.

    With PIPELINING (RFC 2920) offered, MAIL, RCPT and DATA go out in one write and their three
    replies are read together: two round trips per message (envelope, content) instead of four.
    smtplib does not pipeline, so the transaction is written on smtplib's connection by hand;
    greeting, STARTTLS and AUTH stay smtplib's.
    """

    def __init__(self, settings: SmtpSettings, pipelining: bool = True) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None
        self.connections_opened = 0
        # Whether to pipeline when the relay offers it (off: one command per round trip).
        self.pipelining = pipelining
        # The open connection's extensions, read once per connection.
        self._pipelined = False
        self._size = False

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
            conn.ehlo_or_helo_if_needed()
            if s.username:
                conn.login(s.username, s.password or "")
        except BaseException:
            conn.close()  # a refused greeting, TLS or login must not leak the socket
            raise
        self.connections_opened += 1
        esmtp = conn.does_esmtp
        self._pipelined = self.pipelining and esmtp and conn.has_extn("pipelining")
        self._size = esmtp and conn.has_extn("size")
        return conn

    def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        """Send one message; raises smtplib errors for :func:`classify`.

        The SMTP conversation is spelled out (rather than ``sendmail``) to know how far it got
        when the connection breaks: before the content, a retry cannot duplicate anything.
        """
        reused = self._conn is not None
        conn = self._open()
        try:
            self._envelope(conn, envelope_from, recipient, len(data))
        except smtplib.SMTPServerDisconnected:
            self.close()
            if not reused:
                raise
            # A connection the relay closed while idle; none of this message went out yet.
            conn = self._open()
            self._envelope(conn, envelope_from, recipient, len(data))
        self._content(conn, data)

    def _open(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _refused(self, code: int) -> None:
        # 421 means the relay is closing the channel; any other refusal leaves it usable.
        if code == 421:
            self.close()
        else:
            self.reset()

    def _envelope(self, conn: smtplib.SMTP, envelope_from: str, recipient: str, size: int) -> None:
        """MAIL, RCPT and DATA up to the relay's 354: nothing of the message is sent yet."""
        options = [f"SIZE={size}"] if self._size else []
        if self._pipelined:
            self._pipelined_envelope(conn, envelope_from, recipient, options)
            return
        code, reply = conn.mail(envelope_from, options)
        if code != 250:
            self._refused(code)
            raise smtplib.SMTPSenderRefused(code, reply, envelope_from)
        code, reply = conn.rcpt(recipient)
        if code not in (250, 251):
            self._refused(code)
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        conn.putcmd("data")
        code, reply = conn.getreply()
        if code != 354:
            self._refused(code)
            raise smtplib.SMTPDataError(code, reply)

    def _pipelined_envelope(
        self, conn: smtplib.SMTP, envelope_from: str, recipient: str, options: list[str]
    ) -> None:
        """MAIL, RCPT and DATA in one write, then their three replies, in order (RFC 2920).

        Every reply is read whatever the first ones said, so the connection stays in step; the
        first refusal is the one raised, as without pipelining.
        """
        mail = f"MAIL FROM:{_path(envelope_from)}"
        if options:
            mail += " " + " ".join(options)
        rcpt = f"RCPT TO:{_path(recipient)}"
        conn.send(f"{mail}\r\n{rcpt}\r\nDATA\r\n".encode("ascii"))
        mail_code, mail_reply = conn.getreply()
        rcpt_code, rcpt_reply = conn.getreply()
        data_code, data_reply = conn.getreply()
        if mail_code == 250 and rcpt_code in (250, 251) and data_code == 354:
            return
        if data_code == 354:
            # The relay took DATA although MAIL or RCPT failed: an empty message ends it, and
            # with no valid recipient the relay refuses it (RFC 2920 section 3.1).
            conn.send(b".\r\n")
            conn.getreply()
        if mail_code == 421 or rcpt_code == 421 or data_code == 421:
            self.close()
        else:
            self.reset()
        if mail_code != 250:
            raise smtplib.SMTPSenderRefused(mail_code, mail_reply, envelope_from)
        if rcpt_code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (rcpt_code, rcpt_reply)})
        raise smtplib.SMTPDataError(data_code, data_reply)

    def _content(self, conn: smtplib.SMTP, data: bytes) -> None:
        """The message and its end mark, then the relay's verdict."""
        payload = _dot_stuff(data)
        try:
            # If this raises, the end mark (the last bytes) never went out whole, so the relay
            # cannot have accepted the message: an ordinary transient failure.
            conn.send(payload + b".\r\n")
        except smtplib.SMTPServerDisconnected:
            self.close()
            raise
        try:
            code, reply = conn.getreply()
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            # Everything went out but no verdict came back: the relay may have queued it
            # (RFC 1047) or may have dropped the connection mid-DATA before reading it all.
            raise DeliveryUnknown(f"no reply after the message was sent ({exc})") from None
        if code != 250:
            if code == 421:
                self.close()
            raise smtplib.SMTPDataError(code, reply)

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


_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\]\\,;:\"]+@[^\s<>()\[\]\\,;:\"@]+")


def _path(address: str) -> str:
    """``<address>`` for MAIL and RCPT: a plain address as it is (the ledger's always are),
    anything else through smtplib's parsing, which costs more than the rest of the envelope."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    quoted = smtplib.quoteaddr(address)
    if "\r" in quoted or "\n" in quoted:
        raise ValueError("an address may not hold a line break")
    return quoted


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _dot_stuff(data: bytes) -> bytes:
    """The content as DATA carries it: a line's leading dot doubled, CRLF at the end."""
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def backoff(attempt: int, base: timedelta, cap: timedelta, rng: random.Random) -> timedelta:
    """How long to wait after failed attempt ``attempt`` (1, 2, …): doubling, with ±20 % jitter.

    The jitter spreads a batch that failed together, so its retries don't hit the relay at once.
    """
    seconds = base.total_seconds() * 2 ** max(attempt - 1, 0)
    if seconds * 1.2 > cap.total_seconds():
        return timedelta(seconds=cap.total_seconds() * rng.uniform(0.8, 1.0))  # spread below it
    return timedelta(seconds=seconds * rng.uniform(0.8, 1.2))


def probe(settings: SmtpSettings, timeout: float) -> None:
    """Connect, greet (EHLO), NOOP and QUIT within ``timeout``; raises what got in the way.

    A readiness check, not a send: no login, no envelope, nothing the relay would count.
    """
    if settings.security == "tls":
        conn: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        code, reply = conn.ehlo()
        if code != 250:
            raise smtplib.SMTPHeloError(code, reply)
        code, reply = conn.noop()
        if code != 250:
            raise smtplib.SMTPResponseException(code, reply)
        conn.quit()
    finally:
        conn.close()
