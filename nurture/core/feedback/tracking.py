"""Signed tracking links, and what happens when a candidate opens, clicks or unsubscribes."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.orm import Session

from nurture.core.audience import engagement
from nurture.core.tokens import BadToken, Tokens
from nurture.models import Event, EventKind, Message

_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


def instrument(
    html: str,
    tokens: Tokens,
    message_id: int,
    keep: tuple[str, ...] = (),
    *,
    track_opens: bool = True,
    track_clicks: bool = True,
) -> str:
    """Route the links of a rendered mail through click tracking and add the open pixel.

    ``track_opens`` / ``track_clicks`` false leave the pixel out / the links as written (a
    candidate who opted out of tracking, or open tracking switched off).
    """

    def rewrite(found: re.Match[str]) -> str:
        url = html_lib.unescape(found.group(1))
        if url.startswith(keep):
            return found.group(0)
        return f'href="{html_lib.escape(tokens.click_url(message_id, url))}"'

    tracked = _HREF.sub(rewrite, html) if track_clicks else html
    if not track_opens:
        return tracked
    pixel = (
        f'<img src="{html_lib.escape(tokens.open_url(message_id))}" width="1" height="1" '
        'alt="" style="display:block;height:1px;width:1px;border:0;">'
    )
    # Look for </body> near the end only: lower-casing the whole mail costs more than it finds.
    tail = max(0, len(tracked) - 512)
    closing = tracked[tail:].lower().rfind("</body>")
    if closing == -1:
        return tracked + pixel
    closing += tail
    return tracked[:closing] + pixel + tracked[closing:]


# Mail-privacy proxies and link scanners announce themselves; their hits are not a person's.
_MACHINE_AGENTS = re.compile(
    r"GoogleImageProxy|YahooMailProxy|Barracuda|Mimecast|Proofpoint|bot|crawler|spider"
    r"|python-requests|curl/|Wget",
    re.IGNORECASE,
)


def looks_like_machine(user_agent: str) -> bool:
    """True for user agents of proxies and scanners rather than a person's mail app."""
    return bool(_MACHINE_AGENTS.search(user_agent or ""))


class Tracked(Protocol):
    """What recording a hit needs of the message it belongs to."""

    id: int
    candidate_id: int
    sent_at: datetime | None


# Built once: a tracking hit is the hottest path there is.
_INSERT_EVENT = cast(Table, Event.__table__).insert()


def _is_machine(kind: str, user_agent: str, sent_at: datetime | None, now: datetime) -> bool:
    return kind in (EventKind.OPEN, EventKind.CLICK) and (
        looks_like_machine(user_agent) or engagement.is_machine(kind, user_agent, sent_at, now)
    )


def _event_row(
    message: Tracked, kind: str, now: datetime, url: str, user_agent: str, machine: bool
) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "candidate_id": message.candidate_id,
        "kind": str(kind),
        "url": url,
        "user_agent": (user_agent or "")[:400],
        "machine": machine,
        "value": "",
        "created_at": now,
    }


def record_event(
    session: Session,
    message: Tracked,
    kind: EventKind,
    now: datetime,
    url: str = "",
    user_agent: str = "",
) -> bool:
    """Store what happened to a message (one INSERT); returns whether a person did it.

    A person's open or click also counts in the candidate's summary and score (one UPDATE).
    """
    machine = _is_machine(kind, user_agent, message.sent_at, now)
    session.execute(_INSERT_EVENT, _event_row(message, kind, now, url, user_agent, machine))
    if not machine:
        # Keeps the candidate's summary (last open/click, score) current for segments.
        engagement.note_engagement(session, message.candidate_id, kind, now)
    return not machine


# --- hits: an open or a click as it came in, recorded one at a time or many together --------


@dataclass(frozen=True, slots=True)
class Hit:
    """An open or click whose token checked out: the message, when, and what came."""

    kind: EventKind
    message_id: int
    at: datetime
    user_agent: str = ""
    url: str = ""


def open_hit(tokens: Tokens, token: str, user_agent: str, now: datetime) -> Hit:
    """The hit an open pixel's token stands for; BadToken for one we did not sign."""
    message_id = tokens.load("open", token)
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise BadToken("open")
    return Hit(EventKind.OPEN, message_id, now, user_agent)


def click_hit(tokens: Tokens, token: str, user_agent: str, now: datetime) -> Hit:
    """The hit a click token stands for, its ``url`` the link the message contained.

    BadToken for a token we did not sign or one that leads anywhere but a web page.
    """
    payload = tokens.load("click", token)
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)):
        raise BadToken("click")
    message_id, url = payload
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise BadToken("click")
    return Hit(EventKind.CLICK, message_id, now, user_agent, url)


# Table columns, not the mapped class's: plain rows, no ORM loading on the hottest path.
_MESSAGES = Message.__table__
_TRACKED = select(_MESSAGES.c.id, _MESSAGES.c.candidate_id, _MESSAGES.c.sent_at).where(
    _MESSAGES.c.id.in_(bindparam("message_ids", expanding=True))
)


# PostgreSQL takes a batch's events as one array per column, in one statement (an executemany
# costs a round trip's work per row in psycopg).
_EVENT_COLUMNS = {
    "message_id": "integer", "candidate_id": "integer", "kind": "text", "url": "text",
    "user_agent": "text", "machine": "boolean", "value": "text", "created_at": "timestamp",
}  # fmt: skip
_INSERT_EVENTS_UNNEST = text(
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _EVENT_COLUMNS.items())
    + ")"
)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as one list per column, times as ``UTCDateTime`` stores them (naive UTC)."""
    columns: dict[str, list[Any]] = {name: [row[name] for row in rows] for name in _EVENT_COLUMNS}
    columns["created_at"] = [
        when.astimezone(UTC).replace(tzinfo=None) for when in columns["created_at"]
    ]
    return columns


def record_hits(session: Session, hits: Sequence[Hit]) -> list[bool | None]:
    """Store many hits in the caller's transaction, as ``record_event`` stores each.

    One SELECT of their messages, one multi-row INSERT of their events, and one UPDATE per
    candidate a person engaged (``engagement.note_engagements``). Returns, per hit, whether a
    person made it, or None when its message does not exist (nothing stored for that hit).
    """
    if not hits:
        return []
    found = {
        row.id: row
        for row in session.execute(
            _TRACKED, {"message_ids": sorted({hit.message_id for hit in hits})}
        )
    }
    rows: list[dict[str, Any]] = []
    human: list[tuple[int, str, datetime]] = []
    outcome: list[bool | None] = []
    for hit in hits:
        message = found.get(hit.message_id)
        if message is None:
            outcome.append(None)
            continue
        machine = _is_machine(hit.kind, hit.user_agent, message.sent_at, hit.at)
        rows.append(_event_row(message, hit.kind, hit.at, hit.url, hit.user_agent, machine))
        if not machine:
            human.append((message.candidate_id, str(hit.kind), hit.at))
        outcome.append(not machine)
    if rows and session.get_bind().dialect.name == "postgresql":
        session.execute(_INSERT_EVENTS_UNNEST, _columns(rows))
    elif rows:
        session.execute(_INSERT_EVENT, rows)  # an executemany: cheap on SQLite
    engagement.note_engagements(session, human)
    return outcome


def open_message(
    session: Session, tokens: Tokens, token: str, user_agent: str, now: datetime
) -> None:
    """Record an open; a bad token or unknown message changes nothing."""
    if record_hits(session, [open_hit(tokens, token, user_agent, now)]) == [None]:
        raise BadToken("open")


def click(session: Session, tokens: Tokens, token: str, user_agent: str, now: datetime) -> str:
    """Record a click and return the URL it leads to (only ever one the message contained)."""
    hit = click_hit(tokens, token, user_agent, now)
    if record_hits(session, [hit]) == [None]:
        raise BadToken("click")
    return hit.url
