"""Interview-experience ratings: the one-click 1-5 answer in a mail, recorded and summed up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from nurture.core.feedback.answers import feedback_row
from nurture.core.feedback.tracking import looks_like_machine
from nurture.core.tokens import BadToken, Tokens
from nurture.core.webhooks.events import emit
from nurture.models.candidates import Candidate
from nurture.models.messages import Event, EventKind, Message

RATINGS = range(1, 6)


def rating_target(session: Session, tokens: Tokens, token: str) -> tuple[Message, int]:
    """The message and the answer (1-5) a rating link stands for, or BadToken."""
    payload = tokens.load("rating", token)
    if not (
        isinstance(payload, list)
        and len(payload) == 2
        and isinstance(payload[0], int)
        and payload[1] in RATINGS
        and isinstance(payload[1], int)
    ):
        raise BadToken("rating")
    message = session.get(Message, payload[0])
    if message is None:
        raise BadToken("rating")
    return message, payload[1]


def record_rating(
    session: Session, message: Message, value: int, user_agent: str, now: datetime
) -> Event | None:
    """Store the candidate's answer: one rating per message, a later answer replaces it.

    Link scanners fetch every link of a mail, all five answers included: their hits are not
    recorded at all (None), so they neither count nor overwrite the person's answer.
    """
    if looks_like_machine(user_agent):
        return None
    event = session.scalar(
        select(Event)
        .where(Event.message_id == message.id, Event.kind == EventKind.RATING)
        .order_by(Event.id)
        .limit(1)
    )
    if event is None:
        event = Event(
            message_id=message.id,
            candidate_id=message.candidate_id,
            kind=EventKind.RATING,
            machine=False,
        )
        session.add(event)
    event.value = str(value)
    event.user_agent = (user_agent or "")[:400]
    event.created_at = now
    # Kept beside the free-text answer that may follow, with the stage and rejection reason.
    feedback = feedback_row(session, message, now)
    feedback.rating = value
    feedback.updated_at = now
    emit(
        session,
        "candidate.rated",
        now,
        candidate=session.get(Candidate, message.candidate_id),
        data={"rating": value, "message_id": message.id, "campaign_id": message.campaign_id},
    )
    return event


@dataclass(frozen=True)
class RatingSummary:
    """The answers to "how was your interview experience?" in one campaign."""

    count: int
    average: float | None
    distribution: dict[int, int]  # answer (1-5) -> how many candidates gave it


def rating_summary(
    session: Session, campaign_id: int | None, since: datetime | None = None
) -> RatingSummary:
    """Count, average and distribution of the ratings given in a campaign's mail (or in all
    mail, with ``campaign_id`` None), those given ``since`` then when it is set."""
    where = [Event.kind == EventKind.RATING, Event.machine.is_(False)]
    if campaign_id is not None:
        where.append(Message.campaign_id == campaign_id)
    if since is not None:
        where.append(Event.created_at >= since)
    rows = session.execute(
        select(Event.value, func.count())
        .join(Message, Message.id == Event.message_id)
        .where(and_(*where))
        .group_by(Event.value)
    )
    distribution = dict.fromkeys(RATINGS, 0)
    for value, count in rows:
        if value in {str(r) for r in RATINGS}:
            distribution[int(value)] += count
    total = sum(distribution.values())
    average = (
        round(sum(value * count for value, count in distribution.items()) / total, 2)
        if total
        else None
    )
    return RatingSummary(total, average, distribution)


def recent_comments(
    session: Session, campaign_id: int | None = None, limit: int = 5
) -> list[tuple[int, str, datetime]]:
    """The latest comments candidates added to their rating: (rating, comment, when)."""
    query = (
        select(Event.value, Event.note, Event.created_at)
        .join(Message, Message.id == Event.message_id)
        .where(Event.kind == EventKind.RATING, Event.note != "", Event.machine.is_(False))
        .order_by(Event.created_at.desc())
        .limit(limit)
    )
    if campaign_id is not None:
        query = query.where(Message.campaign_id == campaign_id)
    return [(int(v) if v.isdigit() else 0, n, t) for v, n, t in session.execute(query)]
