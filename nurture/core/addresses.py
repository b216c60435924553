"""Email addresses: the one form nurture stores, their hashes, and whether one is suppressed.

A small shared piece below the domains: audience, compliance, campaigns and accounts all need
to recognise an address and to know whether it may be mailed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from nurture.core import settings
from nurture.core.errors import ValidationError
from nurture.models.candidates import CandidateStatus, Suppression


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
    raw = (settings.current() if config is None else config).get("SUPPRESSION_FOLD_DOMAINS") or ()
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
