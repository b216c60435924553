"""Erasure: a candidate's personal data removed, the address kept only as a suppression hash."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from nurture.core.audience.candidates import end_enrolments
from nurture.core.audience.schemas import TEXT_FIELDS
from nurture.core.compliance.suppressions import suppress
from nurture.core.webhooks.events import emit, forget_candidate
from nurture.models.candidates import Candidate, CandidateStatus
from nurture.models.feedback import FeedbackAnswer
from nurture.models.messages import Message
from nurture.models.referrals import Referral
from nurture.models.replies import Reply


def erase(session: Session, candidate: Candidate, now: datetime, *, notify: bool = True) -> None:
    """Remove personal data, keeping the address only as a suppression hash.

    ``notify=False`` keeps the ATS out of it: someone it never heard of (a referral who did not
    say yes) needs no erasure there.
    """
    if notify and candidate.status != CandidateStatus.ERASED:
        # Told before the address goes: the ATS finds the person by it (the log drops it later).
        emit(session, "candidate.erased", now, candidate=candidate)
    suppress(session, candidate.email, "erased", now)
    # The ledger keeps that a mail went out, not to whom or what it said.
    session.execute(
        update(Message)
        .where(Message.candidate_id == candidate.id)
        .values(to_address="", subject="")
    )
    end_enrolments(session, candidate, "erased", now)
    # What they wrote to us, and what a referrer wrote about them, go with them; the reply
    # events stay (without their subject) so the statistics still add up.
    session.execute(delete(Reply).where(Reply.candidate_id == candidate.id))
    # Their written feedback goes; the rating, stage and reason stay for the statistics.
    session.execute(
        update(FeedbackAnswer).where(FeedbackAnswer.candidate_id == candidate.id).values(answer="")
    )
    session.execute(
        update(Referral).where(Referral.candidate_id == candidate.id).values(note="", relation="")
    )
    forget_candidate(session, candidate.id)
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
