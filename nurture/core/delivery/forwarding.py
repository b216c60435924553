"""Forwarding replies to the recruiter over SMTP, with retries; the inbox keeps them either way."""

from __future__ import annotations

import logging
import secrets
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from nurture.core.delivery.dkim import DkimSigner
from nurture.core.delivery.smtp import SmtpTransport, classify
from nurture.core.feedback.replies import ForwardSettings, conversation, forward_mime
from nurture.models.candidates import Candidate
from nurture.models.messages import Message
from nurture.models.replies import ForwardState, Reply

log = logging.getLogger(__name__)

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=2)
STUCK_AFTER = timedelta(minutes=10)


def _claim(session: Session, now: datetime, limit: int) -> list[int]:
    due = (
        select(Reply.id)
        .where(
            Reply.forward_state == ForwardState.PENDING,
            or_(Reply.forward_next_at.is_(None), Reply.forward_next_at <= now),
        )
        .order_by(Reply.id)
        .limit(limit)
    )
    ids = list(session.scalars(due))
    if not ids:
        return []
    claimed = session.scalars(
        update(Reply)
        .where(Reply.id.in_(ids), Reply.forward_state == ForwardState.PENDING)
        .values(forward_state=ForwardState.SENDING, forward_next_at=now)
        .returning(Reply.id)
    ).all()
    session.commit()
    return sorted(claimed)


def _requeue_stuck(session: Session, now: datetime) -> None:
    # A pass that died mid-forward left its row "sending": it goes again (forward_next_at is
    # the claim time while sending).
    session.execute(
        update(Reply)
        .where(
            Reply.forward_state == ForwardState.SENDING,
            Reply.forward_next_at < now - STUCK_AFTER,
        )
        .values(forward_state=ForwardState.PENDING)
    )


def forward_replies(
    session: Session,
    transport: SmtpTransport,
    settings: ForwardSettings,
    now: Callable[[], datetime],
    *,
    dkim: DkimSigner | None = None,
    max_attempts: int = 8,
    limit: int = 50,
) -> dict[str, int]:
    """Forward the pending replies, committing each outcome; returns counts by new state."""
    _requeue_stuck(session, now())
    counts: dict[str, int] = {}
    for reply_id in _claim(session, now(), limit):
        reply = session.get(Reply, reply_id, populate_existing=True)
        if reply is None:
            continue
        state = _forward_one(session, reply, transport, settings, now(), dkim, max_attempts)
        session.commit()
        counts[state] = counts.get(state, 0) + 1
    return counts


def _forward_one(
    session: Session,
    reply: Reply,
    transport: SmtpTransport,
    settings: ForwardSettings,
    now: datetime,
    dkim: DkimSigner | None,
    max_attempts: int,
) -> str:
    candidate = session.get(Candidate, reply.candidate_id)
    answered = session.get(Message, reply.message_id) if reply.message_id else None
    domain = settings.sender_email.rpartition("@")[2] or "nurture.invalid"
    message_id = f"<nurture.reply.{reply.id}.{secrets.token_hex(8)}@{domain}>"
    data = forward_mime(
        reply, candidate, conversation(session, reply), settings, answered, message_id, now
    )
    if dkim is not None:
        data = dkim.sign(data)
    reply.forward_attempts += 1
    try:
        transport.send(settings.sender_email, reply.forward_to, data)
    except (smtplib.SMTPException, OSError) as exc:
        failure = classify(exc)
        transport.close()
        if failure.transient and reply.forward_attempts < max_attempts:
            delay = min(RETRY_BASE * 2 ** (reply.forward_attempts - 1), RETRY_CAP)
            reply.forward_state = ForwardState.PENDING
            reply.forward_next_at = now + delay
            reply.forward_error = (
                f"attempt {reply.forward_attempts} of {max_attempts}: {failure.text}"
            )[:2000]
        else:
            reply.forward_state = ForwardState.FAILED
            reply.forward_next_at = None
            reply.forward_error = f"not forwarded: {failure.text}"[:2000]
            log.warning("reply %s could not be forwarded: %s", reply.id, failure.text)
        return reply.forward_state
    reply.forward_state = ForwardState.SENT
    reply.forwarded_at = now
    reply.forward_next_at = None
    reply.forward_error = ""
    reply.raw = None  # the recruiter has the mail now; we keep its text only
    return reply.forward_state
