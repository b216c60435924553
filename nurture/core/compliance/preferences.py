"""The candidate's own say: topics, pause, tracking, their data, and interview ratings."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from nurture.core import languages
from nurture.core.audience.engagement import score_of
from nurture.core.compliance import erasure
from nurture.core.errors import ValidationError
from nurture.core.tokens import BadToken, Tokens
from nurture.models import Campaign, Candidate, CandidateStatus, Event, Message, Topic

PAUSE = timedelta(days=90)
# A preference form rendered this long ago is refused; reloading the page gives a fresh one.
FORM_MAX_AGE = timedelta(days=1)


# --- topics ------------------------------------------------------------------------------------


def wants_topic(candidate: Candidate, topic: str) -> bool:
    """Whether the candidate receives mail of ``topic`` (unknown topics, e.g. "system": yes)."""
    if topic not in set(Topic):
        return True
    return (candidate.topics or {}).get(topic, True) is not False


def topic_allows(topic: str) -> ColumnElement[bool]:
    """SQL over Candidate: true where the candidate receives ``topic`` (SQLite and PostgreSQL)."""
    if topic not in set(Topic):
        return true()
    # JSON true/false on both backends; a missing key (NULL) is "subscribed", so IS NOT false.
    allows: ColumnElement[bool] = Candidate.topics[topic].as_boolean().is_not(False)
    return allows


def set_topics(candidate: Candidate, wanted: set[str], now: datetime) -> None:
    """Store which topics the candidate wants (every known topic gets an explicit answer)."""
    candidate.topics = {**(candidate.topics or {}), **{t.value: t in wanted for t in Topic}}
    candidate.updated_at = now


# --- pause and tracking --------------------------------------------------------------------------


def pause(candidate: Candidate, now: datetime) -> datetime:
    """Hold every mail to the candidate for three months; returns until when."""
    candidate.paused_until = now + PAUSE
    candidate.updated_at = now
    return candidate.paused_until


def unpause(candidate: Candidate, now: datetime) -> None:
    """Mail the candidate again from now on."""
    candidate.paused_until = None
    candidate.updated_at = now


def is_paused(candidate: Candidate, now: datetime) -> bool:
    """Whether the candidate asked for a pause that has not run out."""
    return candidate.paused_until is not None and candidate.paused_until > now


def set_tracking_opt_out(candidate: Candidate, opt_out: bool, now: datetime) -> None:
    """No open pixel and no click redirects in the candidate's mail (or tracking again)."""
    candidate.tracking_opt_out = opt_out
    candidate.updated_at = now


# --- language ------------------------------------------------------------------------------------


def set_language(candidate: Candidate, language: str, now: datetime) -> None:
    """Write to the candidate in ``language`` from now on ("" for the team's own language).

    ValidationError (field ``language``) for what is not a language code; nothing changes.
    """
    try:
        code = languages.normalise(language)
    except languages.BadLanguage as exc:
        raise ValidationError("not a language", {"language": str(exc)}) from None
    candidate.language = code
    candidate.updated_at = now


# --- form tokens ---------------------------------------------------------------------------------


def _url_digest(url_token: str) -> str:
    return hashlib.sha256(url_token.encode()).hexdigest()[:24]


def form_token(tokens: Tokens, url_token: str, action: str, now: datetime) -> str:
    """A hidden-field value that lets one form of one preference page post, for a day."""
    return tokens.sign("form", [_url_digest(url_token), action, int(now.timestamp())])


def check_form_token(
    tokens: Tokens, url_token: str, action: str, value: str, now: datetime
) -> None:
    """BadToken unless ``value`` came from our own page for this URL and this action, lately."""
    try:
        payload = tokens.load("form", value or "")
    except BadToken:
        raise BadToken("form") from None
    if not (isinstance(payload, list) and len(payload) == 3 and isinstance(payload[2], int)):
        raise BadToken("form")
    digest, signed_action, issued = payload
    age = now.timestamp() - issued
    if digest != _url_digest(url_token) or signed_action != action:
        raise BadToken("form")
    if not -60 <= age <= FORM_MAX_AGE.total_seconds():
        raise BadToken("form expired")


# --- access and erasure --------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_data(session: Session, candidate: Candidate, now: datetime) -> dict[str, Any]:
    """Everything nurture holds about the candidate, as JSON-ready data (GDPR access)."""
    profile = {
        "email": candidate.email,
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "timezone": candidate.timezone,
        "language": candidate.language,
        "location": candidate.location,
        "role": candidate.role,
        "stage": candidate.stage,
        "rejection_reason": candidate.rejection_reason,
        "strengths": candidate.strengths,
        "skills": list(candidate.skills or []),
        "tags": candidate.tag_names,
        "source": candidate.source,
        "recruiter_name": candidate.recruiter_name,
        "recruiter_email": candidate.recruiter_email,
        "attributes": candidate.attributes or {},
        "status": candidate.status,
        "consent": {
            "basis": candidate.consent_basis,
            "source": candidate.consent_source,
            "at": _iso(candidate.consent_at),
        },
        "preferences": {
            "topics": {topic.value: wants_topic(candidate, topic) for topic in Topic},
            "paused_until": _iso(candidate.paused_until),
            "tracking_opt_out": candidate.tracking_opt_out,
        },
        "engagement_score": score_of(candidate, now),
        "created_at": _iso(candidate.created_at),
        "updated_at": _iso(candidate.updated_at),
    }
    messages = [
        {
            "id": message.id,
            "campaign": campaign_name,
            "subject": message.subject,
            "to": message.to_address,
            "state": message.state,
            "sent_at": _iso(message.sent_at),
        }
        for message, campaign_name in session.execute(
            select(Message, Campaign.name)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .where(Message.candidate_id == candidate.id)
            .order_by(Message.id)
        )
    ]
    events = [
        {
            "message_id": event.message_id,
            "kind": event.kind,
            "at": _iso(event.created_at),
            "url": event.url,
            "value": event.value,
            "user_agent": event.user_agent,
            "automated": event.machine,
        }
        for event in session.scalars(
            select(Event).where(Event.candidate_id == candidate.id).order_by(Event.id)
        )
    ]
    return {"profile": profile, "messages": messages, "events": events}


def erase_self(session: Session, candidate: Candidate, now: datetime) -> None:
    """The candidate deletes themselves: erasure, the address kept only as a suppression hash."""
    if candidate.status != CandidateStatus.ERASED:
        erasure.erase(session, candidate, now)


# --- candidate-experience ratings --------------------------------------------------------------
