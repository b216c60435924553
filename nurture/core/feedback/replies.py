"""Replies reach a person: each human reply is kept for the team's inbox, with what the person
newly wrote, and forwarded to the candidate's recruiter (or the team address) with the
conversation so far. Auto-replies never get here (``inbound.classify`` tells them apart).
"""

from __future__ import annotations

import email
import email.policy
import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

import html2text
from mailparser_reply import EmailReplyParser
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from nurture.core.webhooks.events import emit
from nurture.models.campaigns import Campaign
from nurture.models.candidates import Candidate
from nurture.models.messages import Event, Message, MessageState
from nurture.models.replies import ForwardState, Reply, ReplyState
from nurture.models.users import User

# Languages whose "On … wrote:" lines the reply parser knows: the quoted mail is cut off there.
LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da"]
# A reply bigger than this is not attached to the forward (its text still is).
ATTACH_LIMIT = 10 * 1024 * 1024
TEXT_LIMIT = 100_000
# Entries of the conversation a forward and the inbox show.
CONVERSATION = 12


@dataclass(frozen=True)
class ReplyText:
    """What a reply says: all of it, and only what the person newly wrote."""

    body: str
    latest: str
    from_name: str
    from_address: str


def _plain_text(msg: email.message.EmailMessage) -> str:
    """The text of a mail: its text/plain part, else its HTML as text."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if part.get_content_type() == "text/html":
        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.ignore_images = True
        content = converter.handle(content)
    return str(content).replace("\r\n", "\n").strip()


def read_reply(raw: bytes) -> ReplyText:
    """Split a reply into its whole text and the part newly written (quotes, signature cut)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    body = _plain_text(msg)[:TEXT_LIMIT]
    latest = body
    try:
        parsed = EmailReplyParser(languages=LANGUAGES).read(text=body)
        if parsed.replies and parsed.replies[0].content.strip():
            latest = parsed.replies[0].content.strip()
    except Exception:  # noqa: BLE001 - a heuristic that trips on odd text keeps the whole text
        latest = body
    name, address = parseaddr(str(msg.get("From", "")))
    return ReplyText(body, latest, one_line(name)[:200], address.strip().lower()[:320])


def forward_address(candidate: Candidate, team_address: str | None) -> str:
    """Who a candidate's reply goes to: their recruiter, else the team address, else nobody."""
    return (candidate.recruiter_email or team_address or "").strip()


def record_reply(
    session: Session,
    candidate: Candidate,
    message: Message,
    event: Event,
    raw: bytes,
    mail_message_id: str,
    subject: str,
    now: datetime,
    team_address: str | None = None,
) -> Reply:
    """Keep a human reply for the inbox, queue its forward, and tell the ATS."""
    text = read_reply(raw) if raw else ReplyText("", "", "", "")
    to = forward_address(candidate, team_address)
    reply = Reply(
        candidate_id=candidate.id,
        message_id=message.id,
        event_id=event.id,
        mail_message_id=mail_message_id[:255],
        from_address=text.from_address or candidate.email,
        from_name=text.from_name or candidate.full_name,
        subject=subject,
        body=text.body,
        latest=text.latest,
        raw=raw if raw and len(raw) <= ATTACH_LIMIT else None,
        received_at=now,
        state=ReplyState.OPEN,
        forward_to=to,
        forward_state=ForwardState.PENDING if to else ForwardState.NONE,
        forward_attempts=0,
        forward_next_at=now if to else None,
        forward_error="" if to else "no recruiter and no NURTURE_REPLY_TEAM_ADDRESS",
    )
    session.add(reply)
    session.flush()
    emit(
        session,
        "candidate.replied",
        now,
        candidate=candidate,
        data={
            "reply_id": reply.id,
            "subject": subject,
            "text": text.latest[:5000],
            "message_id": message.id,
            "campaign_id": message.campaign_id,
            "received_at": now.isoformat(),
        },
    )
    return reply


def one_line(value: str) -> str:
    """A header value on one line, so nothing in a reply can inject a header."""
    return " ".join(str(value).split())


# --- the conversation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One entry of a conversation: a mail we sent, or one of their replies."""

    at: datetime
    who: str  # "us" or "them"
    subject: str
    text: str = ""
    campaign: str = ""
    reply_id: int | None = None


def conversation(session: Session, reply: Reply, limit: int = CONVERSATION) -> list[Turn]:
    """Our mails to the candidate and their replies up to this one, oldest first."""
    sent = session.execute(
        select(Message.sent_at, Message.subject, Campaign.name)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(
            Message.candidate_id == reply.candidate_id,
            Message.state == MessageState.SENT,
            Message.sent_at <= reply.received_at,
        )
        .order_by(Message.sent_at.desc())
        .limit(limit)
    ).all()
    answers = session.scalars(
        select(Reply)
        .where(Reply.candidate_id == reply.candidate_id, Reply.received_at <= reply.received_at)
        .order_by(Reply.received_at.desc(), Reply.id.desc())
        .limit(limit)
    ).all()
    turns = [
        Turn(at, "us", subject or "(no subject)", campaign=name)
        for at, subject, name in sent
        if at is not None
    ]
    turns += [Turn(r.received_at, "them", r.subject, r.latest, reply_id=r.id) for r in answers]
    turns.sort(key=lambda t: (t.at, t.who == "them"))
    return turns[-limit:]


# --- the forward -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardSettings:
    """Who a forward comes from and where its "open in nurture" link points."""

    sender_email: str
    company_name: str
    base_url: str

    @classmethod
    def from_config(cls, config: Any) -> ForwardSettings:
        """``SENDER_EMAIL``, ``COMPANY_NAME`` and ``BASE_URL``."""
        return cls(config["SENDER_EMAIL"], config["COMPANY_NAME"], config["BASE_URL"].rstrip("/"))


def _when(at: datetime) -> str:
    return at.strftime("%d %b %Y, %H:%M UTC")


def forward_mime(
    reply: Reply,
    candidate: Candidate | None,
    turns: list[Turn],
    settings: ForwardSettings,
    answered: Message | None,
    message_id: str,
    now: datetime,
) -> bytes:
    """The mail a recruiter receives: not a campaign mail (no tracking, no unsubscribe footer).

    It comes from the nurture sender on behalf of the candidate, with Reply-To the candidate,
    so answering it writes to them; it threads under their reply, and the mail as they sent it
    is attached whole.
    """
    name = reply.from_name or (candidate and candidate.full_name) or reply.from_address
    link = f"{settings.base_url}/admin/replies/{reply.id}"
    about = f"“{answered.subject}”" if answered is not None and answered.subject else "our mail"
    lines = [
        f"{name} <{reply.from_address}> replied to {about}.",
        f"Answer this mail to write back to {name.split()[0] if name else 'them'}: "
        "your answer goes to them directly.",
        "",
        "---- Their reply ----",
        reply.latest or reply.body or "(no text)",
        "",
        "---- The conversation so far ----",
    ]
    for turn in turns:
        who = "We wrote" if turn.who == "us" else f"{name} replied"
        lines.append(f"{_when(turn.at)} · {who}: {turn.subject}")
        if turn.who == "them" and turn.reply_id != reply.id and turn.text:
            lines.append("    " + " ".join(turn.text.split())[:300])
    lines += ["", f"Open it in nurture, and mark it handled there: {link}"]
    text = "\n".join(lines)

    def esc(value: str) -> str:
        return html.escape(value, quote=True)

    items = "".join(
        f"<li><strong>{esc(_when(t.at))}</strong> · "
        f"{'We wrote' if t.who == 'us' else esc(name) + ' replied'}: {esc(t.subject)}"
        + (
            f"<br><span>{esc(' '.join(t.text.split())[:300])}</span>"
            if t.who == "them" and t.reply_id != reply.id and t.text
            else ""
        )
        + "</li>"
        for t in turns
    )
    body_html = (
        f"<p><strong>{esc(name)}</strong> &lt;{esc(reply.from_address)}&gt; replied to "
        f"{esc(about)}. Answer this mail to write back: your answer goes to them directly.</p>"
        f"<blockquote>{esc(reply.latest or reply.body or '(no text)')}</blockquote>"
        f"<p><strong>The conversation so far</strong></p><ul>{items}</ul>"
        f'<p><a href="{esc(link)}">Open it in nurture</a> to mark it handled.</p>'
    ).replace("<blockquote>", '<blockquote style="white-space:pre-line">', 1)

    msg = EmailMessage(policy=email.policy.SMTP)
    display = f"{one_line(name)} via {settings.company_name}"
    msg["From"] = formataddr((display, settings.sender_email))
    msg["Reply-To"] = formataddr((one_line(name), reply.from_address))
    msg["To"] = reply.forward_to
    msg["Subject"] = one_line(reply.subject) or f"Reply from {one_line(name)}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    thread = [answered.message_id] if answered is not None and answered.message_id else []
    if reply.mail_message_id:
        msg["In-Reply-To"] = reply.mail_message_id
        thread.append(reply.mail_message_id)
    if thread:
        msg["References"] = " ".join(thread)
    # RFC 3834: a robot passed this on; other robots must not answer it.
    msg["Auto-Submitted"] = "auto-forwarded"
    msg["X-Nurture-Reply"] = str(reply.id)
    msg.set_content(text)
    msg.add_alternative(body_html, subtype="html")
    if reply.raw:
        # The mail as they sent it, attachments and all (message/rfc822).
        original = email.message_from_bytes(reply.raw, policy=email.policy.default)
        msg.add_attachment(original, filename="reply.eml")
    return msg.as_bytes()


# --- the inbox -------------------------------------------------------------------------------


def inbox_counts(session: Session) -> dict[str, int]:
    """Replies by state, for the inbox's tabs and the navigation badge."""
    counts: dict[str, int] = dict.fromkeys(ReplyState, 0)
    for state, n in session.execute(select(Reply.state, func.count()).group_by(Reply.state)):
        counts[state] = n
    return counts


def inbox_query(state: str = ReplyState.OPEN) -> Select[Reply, Candidate]:
    """The inbox, newest first: open ones by default, "handled", or "" for all."""
    query = select(Reply, Candidate).join(Candidate, Candidate.id == Reply.candidate_id)
    if state:
        query = query.where(Reply.state == state)
    return query.order_by(Reply.received_at.desc(), Reply.id.desc())


def set_handled(reply: Reply, handled: bool, user: User | None, now: datetime) -> None:
    """Mark a reply handled (by whom, when), or open again."""
    if handled:
        reply.state = ReplyState.HANDLED
        reply.handled_at = now
        reply.handled_by_id = user.id if user is not None else None
    else:
        reply.state = ReplyState.OPEN
        reply.handled_at = None
        reply.handled_by_id = None


def forward_again(reply: Reply, to: str, now: datetime) -> None:
    """Queue the forward once more, to ``to`` (the recruiter may have changed)."""
    reply.forward_to = to
    reply.forward_state = ForwardState.PENDING if to else ForwardState.NONE
    reply.forward_attempts = 0
    reply.forward_next_at = now if to else None
    reply.forward_error = "" if to else "nobody to forward to"


def reply_dict(reply: Reply) -> dict[str, Any]:
    """The API's view of a reply."""
    return {
        "id": reply.id,
        "candidate_id": reply.candidate_id,
        "message_id": reply.message_id,
        "from": reply.from_address,
        "subject": reply.subject,
        "text": reply.latest,
        "received_at": reply.received_at.isoformat(),
        "state": reply.state,
        "handled_at": reply.handled_at.isoformat() if reply.handled_at else None,
        "forward": {
            "to": reply.forward_to,
            "state": reply.forward_state,
            "attempts": reply.forward_attempts,
            "forwarded_at": reply.forwarded_at.isoformat() if reply.forwarded_at else None,
            "error": reply.forward_error,
        },
    }
