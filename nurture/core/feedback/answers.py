"""Feedback, both ways: the candidate's one free-text answer after a rating ("what could we have
done better?"), summed up per stage and rejection reason; and the recruiter's side, the
candidates a personal follow-up waits for because their note (``strengths``) is empty."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from nurture.core.errors import ValidationError
from nurture.models import (
    HELD_FOR_STRENGTHS,
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    FeedbackAnswer,
    Message,
    MessageState,
    Step,
)

QUESTION = "What could we have done better?"
MAX_ANSWER = 2000
# What the admin calls an empty stage or reason.
UNKNOWN = "(not given)"


def feedback_row(session: Session, message: Message, now: datetime) -> FeedbackAnswer:
    """The feedback row of a rated mail, created with the candidate's stage and reason now."""
    row = session.scalar(select(FeedbackAnswer).where(FeedbackAnswer.message_id == message.id))
    if row is None:
        candidate = session.get(Candidate, message.candidate_id)
        row = FeedbackAnswer(
            message_id=message.id,
            candidate_id=message.candidate_id,
            campaign_id=message.campaign_id,
            stage=(candidate.stage if candidate else "")[:100],
            rejection_reason=(candidate.rejection_reason if candidate else "")[:200],
            answer="",
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    return row


def clean_answer(value: Any) -> str:
    """The answer as typed (trimmed), or ValidationError naming ``answer``."""
    text = str(value or "").replace("\r\n", "\n").replace("\x00", "").strip()
    if not text:
        raise ValidationError(
            "the answer is empty", {"answer": "write a few words, or simply close this page"}
        )
    if len(text) > MAX_ANSWER:
        raise ValidationError(
            "the answer is too long",
            {"answer": f"at most {MAX_ANSWER} characters, please (this one has {len(text)})"},
        )
    return text


def record_answer(session: Session, message: Message, value: Any, now: datetime) -> FeedbackAnswer:
    """Store the candidate's answer to the question; a later answer replaces it."""
    text = clean_answer(value)
    candidate = session.get(Candidate, message.candidate_id)
    if candidate is None or candidate.status == CandidateStatus.ERASED:
        raise ValidationError("nothing to answer", {"answer": "this link no longer works"})
    row = feedback_row(session, message, now)
    row.answer = text
    row.updated_at = now
    return row


# --- what the admin and the API show -----------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """The feedback of one stage or rejection reason."""

    name: str
    ratings: int
    average: float | None
    answers: int

    def as_dict(self) -> dict[str, Any]:
        """The API's shape."""
        return asdict(self)


def _groups(session: Session, column: Any, since: datetime | None) -> list[Group]:
    query = select(
        column,
        func.count(FeedbackAnswer.rating),
        func.avg(FeedbackAnswer.rating),
        func.sum(case((FeedbackAnswer.answer != "", 1), else_=0)),
    ).group_by(column)
    if since is not None:
        query = query.where(FeedbackAnswer.created_at >= since)
    groups = [
        Group(
            name or UNKNOWN,
            int(ratings or 0),
            round(float(average), 2) if average is not None else None,
            int(answers or 0),
        )
        for name, ratings, average, answers in session.execute(query)
    ]
    return sorted(groups, key=lambda g: (-g.answers - g.ratings, g.name))


def by_stage(session: Session, since: datetime | None = None) -> list[Group]:
    """Ratings and answers per interview stage reached (as it was when they answered)."""
    return _groups(session, FeedbackAnswer.stage, since)


def by_reason(session: Session, since: datetime | None = None) -> list[Group]:
    """Ratings and answers per rejection reason (as it was when they answered)."""
    return _groups(session, FeedbackAnswer.rejection_reason, since)


@dataclass(frozen=True)
class Answer:
    """One written answer, as the admin lists it."""

    id: int
    candidate_id: int
    name: str
    email: str
    campaign: str
    stage: str
    rejection_reason: str
    rating: int | None
    answer: str
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The API's shape."""
        return {**asdict(self), "at": self.at.isoformat()}


def answers(
    session: Session,
    stage: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> tuple[list[Answer], int]:
    """Written answers, newest first, optionally of one stage or reason; and how many match."""
    where = [FeedbackAnswer.answer != ""]
    for column, wanted in (
        (FeedbackAnswer.stage, stage),
        (FeedbackAnswer.rejection_reason, reason),
    ):
        if wanted is not None:
            where.append(column == ("" if wanted == UNKNOWN else wanted))
    if since is not None:
        where.append(FeedbackAnswer.created_at >= since)
    total = session.scalar(select(func.count()).select_from(FeedbackAnswer).where(*where)) or 0
    rows = session.execute(
        select(FeedbackAnswer, Candidate, Campaign.name)
        .join(Candidate, Candidate.id == FeedbackAnswer.candidate_id)
        .outerjoin(Campaign, Campaign.id == FeedbackAnswer.campaign_id)
        .where(*where)
        .order_by(FeedbackAnswer.updated_at.desc(), FeedbackAnswer.id.desc())
        .limit(limit)
    )
    found = [
        Answer(
            row.id,
            candidate.id,
            candidate.full_name,
            candidate.email,
            campaign or "",
            row.stage or UNKNOWN,
            row.rejection_reason or UNKNOWN,
            row.rating,
            row.answer,
            row.updated_at,
        )
        for row, candidate, campaign in rows
    ]
    return found, total


@dataclass(frozen=True)
class MissingNote:
    """A candidate a personal follow-up waits for: the step needs their strengths, none written."""

    candidate_id: int
    name: str
    email: str
    recruiter: str
    campaign_id: int
    campaign: str
    step: int  # 1-based, as the admin numbers steps
    held: bool  # a mail is held now (else the step is still to come)
    since: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The API's shape."""
        return {**asdict(self), "since": self.since.isoformat() if self.since else None}


def missing_strengths(session: Session, limit: int = 200) -> tuple[list[MissingNote], int]:
    """Active candidates without a note whose mail is held for it, or whose next step needs it.

    Held mails first (they are late already), then those still to come; each candidate once.
    """
    no_note = and_(
        Candidate.status == CandidateStatus.ACTIVE,
        func.trim(func.coalesce(Candidate.strengths, "")) == "",
    )
    held = (
        select(
            Candidate.id,
            Campaign.id,
            Campaign.name,
            Step.position,
            Message.queued_at,
        )  # fmt: skip
        .join(Message, Message.candidate_id == Candidate.id)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .join(Step, Step.id == Message.step_id)
        .where(no_note, Message.state == MessageState.QUEUED, Message.error == HELD_FOR_STRENGTHS)
    )
    coming = (
        select(Candidate.id, Campaign.id, Campaign.name, Step.position, Enrolment.next_send_at)
        .join(Enrolment, Enrolment.candidate_id == Candidate.id)
        .join(Campaign, Campaign.id == Enrolment.campaign_id)
        .join(
            Step,
            and_(Step.campaign_id == Campaign.id, Step.position == Enrolment.next_position),
        )
        .where(
            no_note,
            Enrolment.status == EnrolmentStatus.ACTIVE,
            Enrolment.next_send_at.is_not(None),
            Campaign.status.in_([CampaignStatus.ACTIVE, CampaignStatus.PAUSED]),
            Step.require_strengths.is_(True),
        )
    )
    seen: dict[int, MissingNote] = {}
    for is_held, query in ((True, held), (False, coming)):
        for candidate_id, campaign_id, campaign, position, since in session.execute(query):
            if candidate_id in seen:
                continue
            seen[candidate_id] = MissingNote(
                candidate_id, "", "", "", campaign_id, campaign, position + 1, is_held, since
            )
    if not seen:
        return [], 0
    rows = session.execute(
        select(
            Candidate.id,
            Candidate.first_name,
            Candidate.last_name,
            Candidate.email,
            Candidate.recruiter_name,
            Candidate.recruiter_email,
        ).where(  # fmt: skip
            Candidate.id.in_(list(seen)[:limit])
        )
    )
    named = {
        r[0]: (" ".join(p for p in (r[1], r[2]) if p), r[3], r[4] or r[5] or "no recruiter")
        for r in rows
    }
    found = []
    for candidate_id, note in list(seen.items())[:limit]:
        name, email, recruiter = named[candidate_id]
        found.append(
            MissingNote(
                candidate_id,
                name,
                email,
                recruiter,
                note.campaign_id,
                note.campaign,
                note.step,
                note.held,
                note.since,
            )  # fmt: skip
        )
    return found, len(seen)
