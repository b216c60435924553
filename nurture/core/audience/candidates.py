"""Creating, updating, suppressing and erasing candidates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.core.addresses import SUPPRESSED_STATUS, suppression_reason
from nurture.core.audience import stages
from nurture.core.audience.schemas import CandidateIn
from nurture.core.inputs import parse
from nurture.models import (
    HELD_FOR_STRENGTHS,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    ExitRule,
    Message,
    MessageState,
    Tag,
)
from nurture.models.base import rows_changed


def upsert_candidate(
    session: Session, data: CandidateIn | Mapping[str, Any], now: datetime
) -> tuple[Candidate, bool]:
    """Create the candidate, or update the one with that email; returns (candidate, created)."""
    given = data if isinstance(data, CandidateIn) else parse(CandidateIn, data)
    email, clean = given.email, given.changes()
    candidate = session.scalar(select(Candidate).where(Candidate.email == email))
    created = candidate is None
    if candidate is None:
        candidate = Candidate(email=email, created_at=now, updated_at=now, skills=[], attributes={})
        reason = suppression_reason(session, email)
        if reason:
            # A re-import of a suppressed address never makes it mailable again.
            candidate.status = SUPPRESSED_STATUS.get(reason, CandidateStatus.UNSUBSCRIBED)
        session.add(candidate)
    tags = clean.pop("tags", None)
    if clean.get("stage"):
        clean["stage"] = stages.canonical(session, clean["stage"], now)
    had_strengths = bool((candidate.strengths or "").strip())
    for field, value in clean.items():
        setattr(candidate, field, value)
    if tags is not None:
        candidate.tags = tags_named(session, tags)
    candidate.updated_at = now
    session.flush()
    if not created and not had_strengths and (candidate.strengths or "").strip():
        release_strength_holds(session, candidate.id)
    return candidate, created


def come_back(candidate: Candidate, why: str, now: datetime) -> bool:
    """A sunset candidate said yes again (``why``: "re-engaged", "new application"): mailable
    from now on. False, and nothing changes, for anyone who is not sunset."""
    if candidate.status != CandidateStatus.SUNSET:
        return False
    candidate.status = CandidateStatus.ACTIVE
    candidate.sunset_reason = f"came back ({why})"[:200]
    candidate.updated_at = now
    return True


def release_strength_holds(session: Session, candidate_id: int) -> int:
    """The candidate's mails held for the recruiter's note go at the scheduler's next pass."""
    return rows_changed(
        session.execute(
            update(Message)
            .where(
                Message.candidate_id == candidate_id,
                Message.state == MessageState.QUEUED,
                Message.error == HELD_FOR_STRENGTHS,
            )
            .values(retry_at=None, enqueued_at=None, error="")
        )
    )


def tags_named(session: Session, names: list[str]) -> list[Tag]:
    """The Tag rows for these names, creating the missing ones."""
    existing = {t.name: t for t in session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        if name not in existing:
            existing[name] = Tag(name=name)
            session.add(existing[name])
    return [existing[name] for name in names]


def end_enrolments(
    session: Session, candidate: Candidate, reason: str, now: datetime, *, by_rule: bool = False
) -> int:
    """Exit the candidate's active enrolments; returns how many ended.

    With ``by_rule``, only campaigns whose exit rules name ``reason`` let the candidate go
    (a re-application, say); otherwise every enrolment ends (unsubscribe, erasure, hire).
    """
    enrolments = session.scalars(
        select(Enrolment).where(
            Enrolment.candidate_id == candidate.id, Enrolment.status == EnrolmentStatus.ACTIVE
        )
    ).all()
    if by_rule:
        enrolments = [e for e in enrolments if reason in (e.campaign.exit_on or [])]
    for enrolment in enrolments:
        enrolment.status = EnrolmentStatus.EXITED
        enrolment.exit_reason = reason
        enrolment.next_send_at = None
        enrolment.ended_at = now
    return len(enrolments)


def mark_hired(session: Session, candidate: Candidate, now: datetime) -> None:
    """A hired candidate leaves every drip."""
    candidate.status = CandidateStatus.HIRED
    candidate.updated_at = now
    end_enrolments(session, candidate, ExitRule.HIRED, now)
