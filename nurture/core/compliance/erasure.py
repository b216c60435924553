"""Erasure: a candidate's personal data removed, the address kept only as a suppression hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from nurture.core.audience.candidates import end_enrolments
from nurture.core.audience.schemas import TEXT_FIELDS
from nurture.core.compliance.suppressions import suppress
from nurture.models.candidates import Candidate, CandidateStatus
from nurture.models.messages import Message


def erase(session: Session, candidate: Candidate, now: datetime) -> None:
    """Remove personal data, keeping the address only as a suppression hash."""
    suppress(session, candidate.email, "erased", now)
    # The ledger keeps that a mail went out, not to whom or what it said.
    session.execute(
        update(Message)
        .where(Message.candidate_id == candidate.id)
        .values(to_address="", subject="")
    )
    end_enrolments(session, candidate, "erased", now)
    candidate.email = f"erased-{candidate.id}@erased.invalid"
    for field in TEXT_FIELDS:
        setattr(candidate, field, "")
    candidate.recruiter_email = ""
    candidate.skills = []
    candidate.attributes = {}
    candidate.consent_basis = candidate.consent_source = ""
    candidate.consent_at = None
    candidate.tags = []
    candidate.status = CandidateStatus.ERASED
    candidate.updated_at = now
