"""The suppression list as operators see it: bring addresses in, look one up, count by reason.

Addresses are stored only as hashes (``suppress``, below), so the list can be fed and queried
address by address but never shown or exported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, Literal, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.core import csvfiles
from nurture.core.addresses import (
    SUPPRESSED_STATUS,
    email_hash,
    find_suppression,
    mailbox_of,
    normalise_email,
    suppressed_among,
)
from nurture.core.audience.candidates import end_enrolments
from nurture.core.errors import ValidationError
from nurture.models import Candidate, CandidateStatus, Suppression

# What an operator may give as the reason; the others (erased) come from nurture itself.
Reason = Literal["unsubscribed", "bounced", "complained", "manual"]
REASONS: tuple[Reason, ...] = get_args(Reason)
DEFAULT_REASON: Reason = "manual"
# The order reasons are counted in; any other stored reason follows alphabetically.
COUNT_ORDER = (*REASONS, "erased")
# One request's worth: beyond this, the caller splits the list.
MAX_ADDRESSES = 50_000
BATCH = 500
# Separators between addresses on one line (a pasted spreadsheet column uses tabs).
_SEPARATORS = re.compile(r"[,;\t]")
_WRAPPING = "\"'<> "


@dataclass(frozen=True)
class Entry:
    """One address as given, with the line it came from (from 1)."""

    line: int
    value: str


@dataclass(frozen=True)
class Rejection:
    """An entry that was not added, and why."""

    line: int
    value: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The rejection as the API answers it."""
        return {"line": self.line, "value": self.value, "reason": self.reason}


@dataclass
class Report:
    """What adding a list of addresses did."""

    reason: str
    added: int = 0
    already: int = 0
    duplicates: int = 0
    candidates_updated: int = 0
    enrolments_ended: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        """How many entries were read, good or bad."""
        return self.added + self.already + self.duplicates + len(self.rejected)

    def as_dict(self, max_rejected: int = 1000) -> dict[str, Any]:
        """The report as the API answers it (the first ``max_rejected`` rejections listed)."""
        return {
            "reason": self.reason,
            "received": self.received,
            "added": self.added,
            "already_suppressed": self.already,
            "duplicates": self.duplicates,
            "candidates_updated": self.candidates_updated,
            "enrolments_ended": self.enrolments_ended,
            "rejected_count": len(self.rejected),
            "rejected": [r.as_dict() for r in self.rejected[:max_rejected]],
            "notes": self.notes,
        }


def check_reason(reason: str | None) -> str:
    """The reason to store; empty means ``manual``, anything else unknown is refused."""
    value = (reason or "").strip().lower() or DEFAULT_REASON
    if value not in REASONS:
        raise ValidationError(
            "reason is not valid", {"reason": f"must be one of: {', '.join(REASONS)}"}
        )
    return value


# --- reading the input ---------------------------------------------------------------------


def entries_from_lines(lines: str | Iterable[str]) -> Iterator[Entry]:
    """Addresses one per line or separated by commas, semicolons or tabs; blanks skipped."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    for number, line in enumerate(lines, start=1):
        for part in _SEPARATORS.split(str(line)):
            value = part.strip(_WRAPPING)
            if value:
                yield Entry(number, value)


def _looks_like_address(value: str) -> bool:
    local, at, domain = value.strip(_WRAPPING).rpartition("@")
    return bool(at and local and "." in domain)


def entries_from_csv(data: bytes) -> tuple[list[Entry], list[Rejection], list[str]]:
    """The first column of a CSV export that holds addresses: (entries, empty rows, notes).

    A first line with no address in it is taken for the column names. Raises ValidationError
    (field ``file``) when the file cannot be read or no column holds addresses.
    """
    text, notes = csvfiles.decode(data)
    header, rows = _without_header(_filled_rows(text.lstrip("\ufeff")))
    column = _address_column(rows)
    if column is None:
        raise ValidationError(
            "no column holds email addresses",
            {"file": "No column of this file holds email addresses."},
        )
    note = _column_note(header, column)
    if note:
        notes.append(note)
    entries, empty = _entries_in(rows, column)
    return entries, empty, notes


Rows = list[tuple[int, list[str]]]


def _filled_rows(text: str) -> Rows:
    """The CSV's rows that have something in them, each with the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=csvfiles.sniff_delimiter(text))
    rows: Rows = []
    last = 0
    try:
        for cells in reader:
            start, last = last + 1, reader.line_num
            if any(c.strip() for c in cells):
                rows.append((start, cells))
    except csv.Error as exc:
        raise ValidationError(
            "the file cannot be read", {"file": f"Line {last + 1} cannot be read as CSV: {exc}."}
        ) from None
    return rows


def _without_header(rows: Rows) -> tuple[list[str], Rows]:
    """(the column names, the rest): a first row with no address in it names the columns."""
    if rows and not any(_looks_like_address(c) for c in rows[0][1]):
        return rows[0][1], rows[1:]
    return [], rows


def _column_note(header: list[str], column: int) -> str:
    """What the report says about where the addresses were found ("" for the first column)."""
    if header and column < len(header) and header[column].strip():
        return f"Addresses were read from the column “{header[column].strip()}”."
    if column:
        return f"Addresses were read from column {column + 1}."
    return ""


def _entries_in(rows: Rows, column: int) -> tuple[list[Entry], list[Rejection]]:
    """The address of each row in ``column``, and the rows where it is empty."""
    entries: list[Entry] = []
    empty: list[Rejection] = []
    for line, cells in rows:
        value = cells[column].strip(_WRAPPING) if column < len(cells) else ""
        if value:
            entries.append(Entry(line, value))
        else:
            empty.append(Rejection(line, "", "no address in this line"))
    return entries, empty


def _address_column(rows: Rows, sample: int = 50) -> int | None:
    """The first column where at least half the filled cells of the first rows are addresses."""
    width = max((len(cells) for _, cells in rows[:sample]), default=0)
    for column in range(width):
        filled = [c[column] for _, c in rows[:sample] if column < len(c) and c[column].strip()]
        looking = sum(1 for value in filled if _looks_like_address(value))
        if filled and looking * 2 >= len(filled):
            return column
    return None


# --- adding --------------------------------------------------------------------------------


def add_addresses(
    session: Session, lines: str | Iterable[str], reason: str | None, now: datetime
) -> Report:
    """Suppress every valid address in ``lines`` (one per line or comma-separated).

    Bad addresses are reported with their line and the validator's message; the good ones
    still land. Candidates with exactly such an address stop being mailed at once.
    """
    return add_entries(session, entries_from_lines(lines), reason, now)


def add_csv(session: Session, data: bytes, reason: str | None, now: datetime) -> Report:
    """Suppress the addresses in a CSV export's first column of addresses (Gem, Lever, …)."""
    reason = check_reason(reason)
    entries, empty, notes = entries_from_csv(data)
    report = add_entries(session, entries, reason, now, allow_empty=bool(empty))
    report.rejected = sorted([*report.rejected, *empty], key=lambda r: r.line)
    report.notes = notes + report.notes
    return report


def add_entries(
    session: Session,
    entries: Iterable[Entry],
    reason: str | None,
    now: datetime,
    *,
    allow_empty: bool = False,
) -> Report:
    """Validate and suppress entries in batches; the caller commits."""
    report = Report(check_reason(reason))
    entries = list(islice(entries, MAX_ADDRESSES + 1))
    if len(entries) > MAX_ADDRESSES:
        raise ValidationError(
            "too many addresses",
            {"emails": f"at most {MAX_ADDRESSES:,} addresses at a time; split the list"},
        )
    if not entries and not allow_empty:
        raise ValidationError("no addresses given", {"emails": "give at least one address"})
    seen: set[str] = set()
    batch: list[str] = []
    for entry in entries:
        try:
            email = normalise_email(entry.value)
        except ValidationError as exc:
            report.rejected.append(Rejection(entry.line, entry.value, _problem(exc)))
            continue
        if email in seen:
            report.duplicates += 1
            continue
        seen.add(email)
        batch.append(email)
        if len(batch) >= BATCH:
            _add_batch(session, batch, report, now)
            batch = []
    if batch:
        _add_batch(session, batch, report, now)
    return report


def _problem(exc: ValidationError) -> str:
    """The validator's own words for a bad address."""
    return next(iter(exc.fields.values()), exc.message)


def _add_batch(session: Session, emails: list[str], report: Report, now: datetime) -> None:
    """Suppress a batch of valid, distinct addresses and stop mailing their candidates."""
    # Already suppressed (exactly, or by folding where configured): one query for the batch;
    # the rest are distinct and not listed, so they are added without asking again.
    known = suppressed_among(session, emails)
    fresh = [suppression_of(email, report.reason, now) for email in emails if email not in known]
    session.add_all(fresh)
    report.added += len(fresh)
    report.already += len(emails) - len(fresh)
    session.flush()
    status = SUPPRESSED_STATUS.get(report.reason, CandidateStatus.UNSUBSCRIBED)
    exit_reason = "suppressed" if report.reason == DEFAULT_REASON else report.reason
    for candidate in session.scalars(select(Candidate).where(Candidate.email.in_(emails))):
        if candidate.status == CandidateStatus.ERASED:
            continue
        # As for a bounce or complaint reported by the relay: a complaint outranks an earlier
        # unsubscribe or bounce; otherwise only a mailable (or hired) candidate changes status.
        if candidate.status != status and (
            candidate.status in (CandidateStatus.ACTIVE, CandidateStatus.HIRED)
            or status == CandidateStatus.COMPLAINED
        ):
            candidate.status = status
            candidate.updated_at = now
            report.candidates_updated += 1
        report.enrolments_ended += end_enrolments(session, candidate, exit_reason, now)
    session.flush()


# --- looking up ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """Why and since when an address is suppressed."""

    reason: str
    since: datetime
    # False when it matched as a variation ("+tag", Gmail dots) of a suppressed address.
    exact: bool

    def as_dict(self) -> dict[str, Any]:
        """The lookup as the API answers it."""
        return {"reason": self.reason, "since": self.since.isoformat(), "exact": self.exact}


def lookup(session: Session, email: str) -> Lookup | None:
    """The reason and date an address is suppressed, or None; folding applies as at send time."""
    address = normalise_email(email)
    found = find_suppression(session, address)
    if found is None:
        return None
    return Lookup(found.reason, found.created_at, found.email_hash == email_hash(address))


def counts(session: Session) -> dict[str, Any]:
    """How many addresses are suppressed, by reason and in total."""
    found = dict(
        session.execute(select(Suppression.reason, func.count()).group_by(Suppression.reason)).all()
    )
    by_reason = {reason: found.pop(reason, 0) for reason in COUNT_ORDER}
    by_reason.update(sorted(found.items()))
    return {"by_reason": by_reason, "total": sum(by_reason.values())}


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
