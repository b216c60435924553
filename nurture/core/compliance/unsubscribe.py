"""Unsubscribing: one click (RFC 8058) or the page ends every drip and suppresses the address;
the candidate may say why, and may change their mind."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nurture.core.addresses import email_hash, find_suppression
from nurture.core.audience import candidates as candidate_service
from nurture.core.compliance import suppressions
from nurture.core.errors import ValidationError
from nurture.core.tokens import BadToken, Tokens
from nurture.core.webhooks.events import emit
from nurture.models.candidates import Candidate, CandidateStatus, Suppression
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


# Why people leave, as the unsubscribe page asks it (the answer is optional).
REASONS = {
    "too_many": "Too many emails",
    "not_relevant": "The emails are not relevant to me",
    "found_job": "I found a job",
    "never_asked": "I never asked to hear from you",
    "other": "Something else",
}
NOTE_LENGTH = 1000


def record_reason(
    session: Session, candidate: Candidate, reason: str, note: str, now: datetime
) -> Event:
    """Keep why the candidate unsubscribed on their unsubscribe event (ValidationError for a
    reason that is not offered; the free text is cut to ``NOTE_LENGTH``)."""
    if reason and reason not in REASONS:
        raise ValidationError("unknown reason", {"reason": "choose one of the reasons offered"})
    event = session.scalar(
        select(Event)
        .where(Event.candidate_id == candidate.id, Event.kind == EventKind.UNSUBSCRIBE)
        .order_by(Event.id.desc())
        .limit(1)
    )
    if event is None:  # an unsubscribe recorded before events were kept
        event = Event(candidate_id=candidate.id, kind=EventKind.UNSUBSCRIBE, created_at=now)
        session.add(event)
    event.value = reason
    event.note = " ".join((note or "").split())[:NOTE_LENGTH]
    return event


def can_resubscribe(session: Session, candidate: Candidate) -> bool:
    """Whether the candidate may undo their own unsubscribe: they unsubscribed themselves,
    and their address is not suppressed for anything else (a bounce, a complaint)."""
    if candidate.status != CandidateStatus.UNSUBSCRIBED:
        return False
    found = find_suppression(session, candidate.email)
    return found is None or found.reason == "unsubscribed"


def resubscribe(session: Session, candidate: Candidate, now: datetime) -> bool:
    """The candidate asked to hear from us again: active, off the suppression list, with
    their consent recorded; False when that is not theirs to undo."""
    if not can_resubscribe(session, candidate):
        return False
    # Their own unsubscribe, whether listed under this address or the mailbox it folds to.
    found = find_suppression(session, candidate.email)
    keys = {email_hash(candidate.email), *([found.email_hash] if found is not None else [])}
    session.execute(
        delete(Suppression).where(
            Suppression.email_hash.in_(keys), Suppression.reason == "unsubscribed"
        )
    )
    candidate.status = CandidateStatus.ACTIVE
    candidate.consent_basis = "consent"
    candidate.consent_source = "resubscribed on the unsubscribe page"
    candidate.consent_at = now
    candidate.updated_at = now
    return True
