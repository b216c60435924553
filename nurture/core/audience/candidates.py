"""Creating, updating, suppressing and erasing candidates."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core.addresses import SUPPRESSED_STATUS, normalise_email, suppression_reason
from nurture.core.audience import stages
from nurture.core.errors import ValidationError
from nurture.models import (
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    Tag,
)

# Fields a caller may set, with their longest accepted length.
TEXT_FIELDS = {
    "first_name": 100,
    "last_name": 100,
    "timezone": 64,
    "location": 200,
    "role": 200,
    "stage": 100,
    "rejection_reason": 200,
    "strengths": 5000,
    "source": 100,
    "recruiter_name": 200,
}


def validate_candidate(data: dict[str, Any]) -> dict[str, Any]:
    """Check every field but the email, collecting all problems; returns the clean values."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for field, limit in TEXT_FIELDS.items():
        if field not in data or data[field] is None:
            continue
        value = data[field]
        if not isinstance(value, str):
            errors[field] = "must be a string"
        elif len(value) > limit:
            errors[field] = f"must be at most {limit} characters"
        else:
            clean[field] = value.strip()
    if clean.get("timezone"):
        try:
            ZoneInfo(clean["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = (
                f"{clean['timezone']!r} is not an IANA time zone (e.g. Europe/Paris)"
            )
    for field in ("skills", "tags"):
        if field in data and data[field] is not None:
            value = data[field]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                errors[field] = "must be a list of strings"
            else:
                clean[field] = sorted({v.strip().lower() for v in value if v.strip()})
    if data.get("recruiter_email"):
        try:
            clean["recruiter_email"] = normalise_email(data["recruiter_email"], "recruiter_email")
        except ValidationError as exc:
            errors.update(exc.fields)
    consent = data.get("consent")
    if consent is not None:
        if not isinstance(consent, dict):
            errors["consent"] = "must be an object with basis, source and at"
        else:
            clean["consent_basis"] = str(consent.get("basis", ""))[:100]
            clean["consent_source"] = str(consent.get("source", ""))[:200]
            if consent.get("at"):
                try:
                    clean["consent_at"] = datetime.fromisoformat(str(consent["at"]))
                    if clean["consent_at"].tzinfo is None:
                        raise ValueError
                except ValueError:
                    errors["consent.at"] = "must be an ISO-8601 time with a zone"
    attributes = data.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            errors["attributes"] = "must be an object"
        else:
            clean["attributes"] = attributes
    if errors:
        raise ValidationError("some fields are not valid", errors)
    return clean


def upsert_candidate(
    session: Session, data: dict[str, Any], now: datetime
) -> tuple[Candidate, bool]:
    """Create the candidate, or update the one with that email; returns (candidate, created)."""
    problems: dict[str, str] = {}
    try:
        email = normalise_email(data.get("email"))
    except ValidationError as exc:
        problems.update(exc.fields)
        email = ""
    try:
        clean = validate_candidate(data)
    except ValidationError as exc:
        problems.update(exc.fields)
    if problems:
        raise ValidationError("some fields are not valid", problems)

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
    for field, value in clean.items():
        setattr(candidate, field, value)
    if tags is not None:
        candidate.tags = tags_named(session, tags)
    candidate.updated_at = now
    session.flush()
    return candidate, created


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
    end_enrolments(session, candidate, "hired", now)
