"""Reading a mailbox: unseen mail from IMAP (imap-tools) or a local maildir, marked once handled."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from imap_tools import (
    AND,
    BaseMailBox,
    MailBox,
    MailBoxStartTls,
    MailBoxUnencrypted,
    MailMessageFlags,
)
from imap_tools import MailMessage as ImapMessage

from nurture.core.errors import ValidationError

# Fetched per IMAP round trip: bounded memory whatever the backlog.
FETCH_BULK = 50


@dataclass(frozen=True)
class Mailbox:
    """Where to read: an IMAP folder or a maildir."""

    scheme: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "maildir":
            return f"maildir:{self.path}"
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.folder}"


def parse_url(url: str, name: str = "mailbox") -> Mailbox:
    """``imaps://user:pass@host:993/INBOX``, ``imap://…``, ``imap+starttls://…`` or a maildir."""
    if not url or not isinstance(url, str):
        raise ValidationError(f"{name} is empty", {name: "give an imap(s):// URL or a maildir"})
    if url.startswith("maildir:"):
        path = url.removeprefix("maildir:").removeprefix("//")
        return Mailbox("maildir", path=path)
    if url.startswith("/"):
        return Mailbox("maildir", path=url)
    parts = urlsplit(url)
    defaults = {"imaps": 993, "imap": 143, "imap+starttls": 143}
    if parts.scheme not in defaults:
        raise ValidationError(
            f"{name} has an unknown scheme", {name: f"{parts.scheme!r}: use imaps, imap or maildir"}
        )
    if not parts.hostname or not parts.username:
        raise ValidationError(f"{name} needs a user and a host", {name: "imaps://user:pass@host"})
    try:
        port = parts.port or defaults[parts.scheme]
    except ValueError:
        raise ValidationError(f"{name} has a bad port", {name: "not a number"}) from None
    return Mailbox(
        parts.scheme,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


@dataclass(frozen=True)
class Fetched:
    """One unseen mail: its raw bytes and the key that marks it handled."""

    key: str
    raw: bytes


class _RawMessage(ImapMessage):
    """imap-tools' message, keeping the exact bytes the server sent."""

    def __init__(self, fetch_data: list[Any]) -> None:
        super().__init__(fetch_data)
        self.raw = self._get_message_data_parts(fetch_data)[0]


def _connect(box: Mailbox, timeout: float) -> BaseMailBox:
    client: BaseMailBox
    context = ssl.create_default_context()
    if box.scheme == "imaps":
        client = MailBox(box.host, box.port, timeout=timeout, ssl_context=context)
    elif box.scheme == "imap+starttls":
        client = MailBoxStartTls(box.host, box.port, timeout=timeout, ssl_context=context)
    else:
        client = MailBoxUnencrypted(box.host, box.port, timeout=timeout)
    client.email_message_class = _RawMessage
    return client.login(box.user, box.password, initial_folder=box.folder)


@contextmanager
def unseen(
    box: Mailbox, limit: int = 500, timeout: float = 30.0
) -> Iterator[tuple[Iterator[Fetched], Callable[[str], None]]]:
    """Unseen mail, oldest first, and a ``done(key)`` that marks one seen once it is handled.

    Mail is fetched without setting \\Seen; the caller commits its work, then calls ``done``.
    A crash in between leaves the mail unseen, to be read again (the caller's work is
    idempotent, so nothing happens twice).
    """
    if box.scheme == "maildir":
        with _maildir_unseen(Path(box.path), limit) as pair:
            yield pair
        return
    client = _connect(box, timeout)
    try:

        def messages() -> Iterator[Fetched]:
            fetched = client.fetch(AND(seen=False), mark_seen=False, limit=limit, bulk=FETCH_BULK)
            for message in fetched:
                if message.uid:
                    yield Fetched(message.uid, message.raw)  # type: ignore[attr-defined]

        def done(key: str) -> None:
            client.flag(key, MailMessageFlags.SEEN, True)

        yield messages(), done
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the server may have gone; nothing left to tidy
            pass


@contextmanager
def _maildir_unseen(
    path: Path, limit: int
) -> Iterator[tuple[Iterator[Fetched], Callable[[str], None]]]:
    """The maildir counterpart: mail without the S flag; done() moves it to cur/ with S."""
    box = stdlib_mailbox.Maildir(path, create=True)

    def messages() -> Iterator[Fetched]:
        keys = [key for key, message in box.iteritems() if "S" not in message.get_flags()]
        # Maildir keys start with the delivery time, so sorting reads the oldest first.
        for key in sorted(keys)[:limit]:
            try:
                with box.get_file(key) as handle:
                    raw = handle.read()
            except KeyError:
                continue  # taken by another reader meanwhile
            yield Fetched(key, raw)

    def done(key: str) -> None:
        try:
            message = box[key]
        except KeyError:
            return
        message.set_subdir("cur")
        message.add_flag("S")
        box[key] = message

    yield messages(), done
