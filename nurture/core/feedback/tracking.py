"""Signed tracking links, and what happens when a candidate opens, clicks or unsubscribes."""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime
from typing import Protocol

from sqlalchemy import bindparam, select
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
_TRACKED = select(Message.id, Message.candidate_id, Message.sent_at).where(
    Message.id == bindparam("message_id")
)
_INSERT_EVENT = Event.__table__.insert()


def tracked(session: Session, message_id: int) -> Tracked | None:
    """The message a token names, as the three columns a hit needs (not the whole row)."""
    return session.execute(_TRACKED, {"message_id": message_id}).first()


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
    machine = kind in (EventKind.OPEN, EventKind.CLICK) and (
        looks_like_machine(user_agent)
        or engagement.is_machine(kind, user_agent, message.sent_at, now)
    )
    session.execute(
        _INSERT_EVENT,
        {
            "message_id": message.id,
            "candidate_id": message.candidate_id,
            "kind": str(kind),
            "url": url,
            "user_agent": (user_agent or "")[:400],
            "machine": machine,
            "value": "",
            "created_at": now,
        },
    )
    if not machine:
        # Keeps the candidate's summary (last open/click, score) current for segments.
        engagement.note_engagement(session, message.candidate_id, kind, now)
    return not machine


def open_message(
    session: Session, tokens: Tokens, token: str, user_agent: str, now: datetime
) -> None:
    """Record an open; a bad token or unknown message changes nothing."""
    message_id = tokens.load("open", token)
    message = tracked(session, message_id) if isinstance(message_id, int) else None
    if message is None:
        raise BadToken("open")
    record_event(session, message, EventKind.OPEN, now, user_agent=user_agent)


def click(session: Session, tokens: Tokens, token: str, user_agent: str, now: datetime) -> str:
    """Record a click and return the URL it leads to (only ever one the message contained)."""
    payload = tokens.load("click", token)
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)):
        raise BadToken("click")
    message_id, url = payload
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise BadToken("click")
    message = tracked(session, message_id)
    if message is None:
        raise BadToken("click")
    record_event(session, message, EventKind.CLICK, now, url=url, user_agent=user_agent)
    return url
