"""Creating, updating, suppressing and erasing candidates."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from nurture.models import (
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    Message,
    Suppression,
    Tag,
)
from nurture.core.compliance.identity import app_config
from nurture.core.errors import ValidationError

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


def normalise_email(value: Any, field: str = "email") -> str:
    """Validate an address and return it in the one form nurture stores (domain lower-cased)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is required", {field: "an email address is required"})
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"{field} is not a valid address", {field: str(exc)}) from None
    # Mailbox names are case-insensitive at every provider that matters; store one form.
    return checked.normalized.lower()


def email_hash(email: str) -> str:
    """The suppression key of an address: SHA-256 of its normalised form."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


# Providers that also ignore dots in the mailbox name, and their other domain names.
DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox_of(email: str) -> str:
    """The mailbox an address reaches at providers that ignore ``+tag`` (and, at Gmail, dots)."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS:
        local, domain = local.replace(".", ""), DOTLESS[domain]
    return f"{local}@{domain}"


def fold_domains(config: Any = None) -> frozenset[str]:
    """The domains ``NURTURE_SUPPRESSION_FOLD_DOMAINS`` names (a list, or text split on commas)."""
    raw = (app_config() if config is None else config).get("SUPPRESSION_FOLD_DOMAINS") or ()
    names = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(str(name).strip().lower() for name in names if str(name).strip())


def suppression_keys(email: str, folding: frozenset[str]) -> tuple[list[str], list[str]]:
    """(email hashes, mailbox hashes) that suppress ``email``: its own, and folded where set."""
    own = email_hash(email)
    if email.rpartition("@")[2].strip().lower() not in folding:
        return [own], []
    folded = email_hash(mailbox_of(email))
    # A suppressed "ana@" stops "ana+jobs@"; a suppressed "ana+x@" (mailbox hash) stops both.
    return [own, folded], [folded]


def find_suppression(session: Session, email: str) -> Suppression | None:
    """The suppression that stops ``email`` (its own, or a folded one where configured)."""
    hashes, mailboxes = suppression_keys(email, fold_domains())
    return session.scalar(
        select(Suppression)
        .where(or_(Suppression.email_hash.in_(hashes), Suppression.mailbox_hash.in_(mailboxes)))
        .order_by(Suppression.id)
        .limit(1)
    )


def suppression_reason(session: Session, email: str) -> str | None:
    """Why the address is suppressed, or None when it is not."""
    found = find_suppression(session, email)
    return found.reason if found is not None else None


def suppressed_among(session: Session, emails: list[str]) -> set[str]:
    """Which of these addresses are suppressed, in one query."""
    folding = fold_domains()
    by_hash: dict[str, set[str]] = {}
    by_mailbox: dict[str, set[str]] = {}
    for email in filter(None, emails):
        hashes, mailboxes = suppression_keys(email, folding)
        for key in hashes:
            by_hash.setdefault(key, set()).add(email)
        for key in mailboxes:
            by_mailbox.setdefault(key, set()).add(email)
    if not by_hash:
        return set()
    found: set[str] = set()
    rows = session.execute(
        select(Suppression.email_hash, Suppression.mailbox_hash).where(
            or_(Suppression.email_hash.in_(by_hash), Suppression.mailbox_hash.in_(by_mailbox))
        )
    )
    for own, mailbox in rows:
        found |= by_hash.get(own, set()) | by_mailbox.get(mailbox, set())
    return found


def is_suppressed(session: Session, email: str) -> bool:
    """True when the address is on the suppression list."""
    return suppression_reason(session, email) is not None


SUPPRESSED_STATUS = {
    "unsubscribed": CandidateStatus.UNSUBSCRIBED,
    "bounced": CandidateStatus.BOUNCED,
    "complained": CandidateStatus.COMPLAINED,
}


def suppression_of(email: str, reason: str, now: datetime) -> Suppression:
    """A new suppression-list row for ``email``: hashes only, so it outlives erasure."""
    return Suppression(
        email_hash=email_hash(email),
        mailbox_hash=email_hash(mailbox_of(email)),
        reason=reason,
        created_at=now,
    )


def suppress(session: Session, email: str, reason: str, now: datetime) -> None:
    """Put an address on the suppression list (idempotent)."""
    key = email_hash(email)
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == key)) is None:
        session.add(suppression_of(email, reason, now))


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
        candidate = Candidate(
            email=email, created_at=now, updated_at=now, skills=[], attributes={}
        )
        reason = suppression_reason(session, email)
        if reason:
            # A re-import of a suppressed address never makes it mailable again.
            candidate.status = SUPPRESSED_STATUS.get(reason, CandidateStatus.UNSUBSCRIBED)
        session.add(candidate)
    tags = clean.pop("tags", None)
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
