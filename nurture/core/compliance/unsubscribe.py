"""Unsubscribing: one click (RFC 8058) or the page ends every drip and suppresses the address."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from nurture.core.audience import candidates as candidate_service
from nurture.core.compliance import suppressions
from nurture.core.tokens import BadToken, Tokens
from nurture.core.webhooks.events import emit
from nurture.models.candidates import Candidate, CandidateStatus
from nurture.models.messages import Event, EventKind, Message


def unsubscribe_target(
    session: Session, tokens: Tokens, token: str
) -> tuple[Candidate, Message | None]:
    """The candidate (and message) an unsubscribe token speaks for."""
    payload = tokens.load("unsubscribe", token)
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], int)):
        raise BadToken("unsubscribe")
    candidate = session.get(Candidate, payload[0])
    if candidate is None:
        raise BadToken("unsubscribe")
    message = session.get(Message, payload[1]) if isinstance(payload[1], int) else None
    if message is not None and message.candidate_id != candidate.id:
        raise BadToken("unsubscribe")
    return candidate, message


def unsubscribe(
    session: Session, candidate: Candidate, message: Message | None, now: datetime
) -> bool:
    """Unsubscribe from everything: end every drip and suppress the address; False if already."""
    already = candidate.status == CandidateStatus.UNSUBSCRIBED
    if candidate.status in (CandidateStatus.ACTIVE, CandidateStatus.HIRED):
        candidate.status = CandidateStatus.UNSUBSCRIBED
        candidate.updated_at = now
    candidate_service.end_enrolments(session, candidate, "unsubscribed", now)
    if candidate.status != CandidateStatus.ERASED:
        suppressions.suppress(session, candidate.email, "unsubscribed", now)
    if not already:
        event = Event(
            message_id=message.id if message else None,
            candidate_id=candidate.id,
            kind=EventKind.UNSUBSCRIBE,
            created_at=now,
        )
        session.add(event)
        emit(session, "candidate.unsubscribed", now, candidate=candidate,
             data={"message_id": message.id if message else None})  # fmt: skip
    return not already
