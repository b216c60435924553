"""CSV imports of candidates: read the upload, map its columns, check every row, write in batches.

Plain functions over a SQLAlchemy session (no Flask, no Redis): the admin, the API, the CLI and
the RQ job all call them. The CSV text lives on the ``Import`` row, so any worker can run it,
and it is always streamed (``csv.reader`` over the text) rather than turned into a list of rows.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session, defer, load_only

from nurture.core.addresses import normalise_email
from nurture.core.audience.schemas import CandidateIn
from nurture.core.campaigns.entries import check_segments
from nurture.core.csvfiles import DELIMITER_NAMES, decode, file_error, sniff_delimiter
from nurture.core.errors import NotFound, ValidationError
from nurture.core.inputs import Input, Text, parse, problem
from nurture.models import Candidate, Import, ImportStatus, User
from nurture.workflows.candidates import save_candidate

log = logging.getLogger(__name__)

MAX_COLUMNS = 200
# Longer than any candidate field allows; a cell this long is nearly always an unclosed quote.
MAX_CELL = 10_000
# The longest tag name the tags table stores (String(100)); checked here so PostgreSQL never
# refuses a whole batch over one long tag.
MAX_TAG = 100
# The job keeps this many bad rows with their reasons; the count is always exact.
MAX_STORED_ERRORS = 1000

IGNORE = ""
ATTRIBUTE = "attribute"
LIST_FIELDS = ("skills", "tags")
CONSENT_FIELDS = {"consent_basis": "basis", "consent_source": "source", "consent_at": "at"}
# Every target a column can be mapped to, with the label the admin shows.
FIELDS: dict[str, str] = {
    IGNORE: "— ignore this column —",
    "email": "Email",
    "first_name": "First name",
    "last_name": "Last name",
    "full_name": "Full name (split into first and last)",
    "timezone": "Time zone",
    "language": "Language (de, fr, pt-BR …)",
    "location": "Location",
    "role": "Role applied for",
    "stage": "Furthest stage",
    "rejection_reason": "Rejection reason",
    "strengths": "Interview strengths",
    "skills": "Skills (list)",
    "tags": "Tags (list)",
    "source": "Source",
    "recruiter_name": "Recruiter name",
    "recruiter_email": "Recruiter email",
    "consent_basis": "Consent basis",
    "consent_source": "Consent source",
    "consent_at": "Consent time",
    ATTRIBUTE: "Custom attribute",
}
# Targets several columns may share; every other target takes one column at most.
MULTI_TARGETS = {IGNORE, ATTRIBUTE, "skills", "tags"}

# Header names as people write them, squashed to letters and digits, per target.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "emailaddress",
        "mail",
        "emailid",
        "candidateemail",
        "personalemail",
        "workemail",
        "contactemail",
        "courriel",
    ),
    "first_name": ("firstname", "first", "givenname", "forename", "prenom", "vorname"),
    "last_name": ("lastname", "last", "surname", "familyname", "nachname"),
    "full_name": ("name", "fullname", "candidatename", "candidate", "nom"),
    "timezone": ("timezone", "tz", "zone", "timezonename", "timezoneiana"),
    "language": ("language", "lang", "locale", "preferredlanguage", "sprache", "langue", "idioma"),
    "location": ("location", "city", "place", "basedin", "candidatelocation", "country"),
    "role": (
        "role",
        "position",
        "jobtitle",
        "job",
        "title",
        "appliedfor",
        "roleappliedfor",
        "opening",
        "requisition",
        "jobapplied",
    ),
    "stage": (
        "stage",
        "furtheststage",
        "interviewstage",
        "stagereached",
        "laststage",
        "currentstage",
    ),
    "rejection_reason": (
        "rejectionreason",
        "reason",
        "rejectedreason",
        "rejection",
        "disqualificationreason",
        "whyrejected",
    ),
    "strengths": ("strengths", "interviewstrengths", "strength", "highlights"),
    "skills": ("skills", "skill", "skillset", "technologies", "techstack", "stack"),
    "tags": ("tags", "tag", "labels", "label", "pools", "talentpools", "talentpool"),
    "source": ("source", "candidatesource", "leadsource", "channel", "origin"),
    "recruiter_name": ("recruitername", "recruiter", "owner", "ownername", "recruiterfullname"),
    "recruiter_email": ("recruiteremail", "recruiteremailaddress", "owneremail", "recruitermail"),
    "consent_basis": ("consentbasis", "legalbasis", "lawfulbasis", "consent"),
    "consent_source": ("consentsource",),
    "consent_at": (
        "consentat",
        "consentdate",
        "consentedat",
        "consenttime",
        "consentgiven",
        "consentgivenat",
    ),
}
_KNOWN = {alias: target for target, aliases in _SYNONYMS.items() for alias in aliases}
_LIST_SPLIT = re.compile(r"[;,|\n]")


@dataclass
class CsvFile:
    """A decoded upload: its text, its delimiter, its column names and notes for the reader."""

    text: str
    delimiter: str
    header: list[str]
    header_line: int
    total_rows: int
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    """One CSV record turned into candidate data, with what is wrong with it."""

    line: int
    data: dict[str, Any]
    email: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    """What an import did (or, for a dry run, would do)."""

    total_rows: int = 0
    created: int = 0
    updated: int = 0
    rejected_count: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def good_rows(self) -> int:
        """Rows that are (or would be) written."""
        return self.created + self.updated

    def as_dict(self) -> dict[str, Any]:
        """The report as the API and the CLI give it."""
        return {
            "dry_run": self.dry_run,
            "total_rows": self.total_rows,
            "created": self.created,
            "updated": self.updated,
            "rejected_count": self.rejected_count,
            "rejected": self.rejected,
        }


# --- the upload form ----------------------------------------------------------------------


def _mapping(value: str) -> dict[str, str]:
    try:
        mapping = json.loads(value) if value.strip() else {}
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise problem("mapping", "must be a JSON object of CSV column → field")
    return mapping


def _tags(value: str | list[str]) -> list[str]:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise problem("tags", "not valid JSON") from None
        value = parsed if isinstance(parsed, list) else [parsed]
    elif isinstance(value, list):
        value = ",".join(value)
    try:
        return clean_tags(value)
    except ValidationError as exc:
        raise problem("tags", exc.fields["tags"]) from None


class ImportForm(Input):
    """A CSV upload: the file, how its columns map to fields, tags for everyone, a dry run."""

    file: Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"})]
    mapping: Annotated[
        Annotated[str, Text(100_000)],
        AfterValidator(_mapping),
        Field(description="a JSON object of CSV column → candidate field, overriding the guess"),
    ] = ""
    tags: Annotated[
        str | list[str],
        AfterValidator(_tags),
        Field(description="tags for every imported candidate: a JSON list or comma-separated"),
    ] = ""
    dry_run: bool = Field(default=False, description="check and count, write nothing")
    unknown: Literal["attribute", "ignore"] = Field(
        default="attribute", description="what columns no field matches become"
    )


# --- reading the upload -------------------------------------------------------------------


def read_csv(data: bytes) -> CsvFile:
    """Decode an upload and check that it has a header and at least one row."""
    text, notes = decode(data)
    return inspect(text, notes)


def inspect(text: str, notes: list[str] | None = None) -> CsvFile:
    """Find the delimiter and header of CSV text, count its rows, refuse what cannot be imported."""
    text = text.lstrip("\ufeff")
    delimiter = sniff_delimiter(text)
    header, header_line = _header(text, delimiter)
    total = sum(1 for _ in _records(text, delimiter))
    if total == 0:
        raise file_error("The file has column names but no rows below them.")
    notes = list(notes or [])
    if delimiter != ",":
        notes.append(f"Columns are separated by a {DELIMITER_NAMES[delimiter]}.")
    return CsvFile(text, delimiter, header, header_line, total, notes)


def _header(text: str, delimiter: str) -> tuple[list[str], int]:
    """The column names (blank ones named, repeats numbered) and the header's last line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                break
        else:
            raise file_error("The file is empty.")
    except csv.Error as exc:
        raise file_error(f"The first line cannot be read as CSV: {exc}.") from None
    if len(cells) > MAX_COLUMNS:
        raise file_error(
            f"The first line has {len(cells)} columns; at most {MAX_COLUMNS} are supported."
        )
    for cell in cells:
        if "@" in cell and _is_address(cell):
            raise file_error(
                f"The first line holds an address ({cell.strip()}), not column names. Add a "
                "header line such as: email,first_name,last_name"
            )
    names: list[str] = []
    for position, cell in enumerate(cells, start=1):
        name = cell.strip().strip("\ufeff") or f"Column {position}"
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name} ({n})", n + 1
        names.append(unique)
    return names, reader.line_num


def _is_address(value: str) -> bool:
    """True when the value is a valid email address."""
    try:
        normalise_email(value)
    except ValidationError:
        return False
    return True


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line, cells, problem) of each record after the header; blank lines are skipped.

    The line is the physical line where the record starts (the header is line 1), so it is the
    line a text editor and, for files without multi-line cells, a spreadsheet show.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for cells in reader:
        if any(c.strip() for c in cells):
            break
    last = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield last + 1, None, f"the line cannot be read as CSV ({exc})"
            last = reader.line_num
            continue
        start, last = last + 1, reader.line_num
        if any(c.strip() for c in cells):
            yield start, cells, ""


# --- mapping ------------------------------------------------------------------------------


def _squash(name: str) -> str:
    """``Prénom`` → ``prenom``, ``E-mail`` → ``email``: how header names are compared."""
    plain = unicodedata.normalize("NFKD", name.lower())
    return re.sub(r"[^a-z0-9]", "", plain)


def attribute_key(column: str) -> str:
    """The custom-attribute key a column is stored under: ``LinkedIn URL`` → ``linkedin_url``."""
    return re.sub(r"\W+", "_", column.lower()).strip("_") or "column"


def propose_mapping(header: list[str], unknown: str = ATTRIBUTE) -> dict[str, str]:
    """Guess each column's candidate field from its name; unknown columns → ``unknown``."""
    mapping: dict[str, str] = dict.fromkeys(header, unknown)
    taken: set[str] = set()
    # Exact names first, so "Email" wins over a "Recruiter's e-mail" column further left.
    for guess in (_exact_target, _fuzzy_target):
        for column in header:
            if mapping[column] != unknown:
                continue
            target = guess(column)
            if target and (target in MULTI_TARGETS or target not in taken):
                # A second "Email" column is kept as the user chose for unknown ones.
                taken.add(target)
                mapping[column] = target
    if "full_name" in taken and {"first_name", "last_name"} & taken:
        # First and last name columns win over a combined one.
        for column, target in mapping.items():
            if target == "full_name":
                mapping[column] = unknown
    return mapping


def _exact_target(column: str) -> str | None:
    """The field whose usual header names include this one ("E-mail", "First Name", "Prénom")."""
    return _KNOWN.get(_squash(column))


def _fuzzy_target(column: str) -> str | None:
    """A field for header names no synonym matched exactly ("Recruiter's e-mail", "Email 2")."""
    squashed = _squash(column)
    if "recruiter" in squashed or "owner" in squashed:
        return "recruiter_email" if "mail" in squashed else "recruiter_name"
    if "email" in squashed:
        return "email"
    if "timezone" in squashed:
        return "timezone"
    if "consent" in squashed:
        return "consent_at" if any(w in squashed for w in ("date", "time", "when")) else None
    return None


def check_mapping(header: list[str], mapping: dict[str, Any]) -> dict[str, str]:
    """Problems with a mapping, keyed by column (``mapping`` for the whole); empty when fine."""
    problems: dict[str, str] = {}
    unknown_columns = [c for c in mapping if c not in header]
    if unknown_columns:
        problems["mapping"] = f"the file has no column {unknown_columns[0]!r}"
    used: dict[str, str] = {}
    for column in header:
        target = mapping.get(column, IGNORE)
        if not isinstance(target, str) or target not in FIELDS:
            problems[column] = f"{target!r} is not a candidate field"
            continue
        if target in MULTI_TARGETS:
            continue
        if target in used:
            problems[column] = f"{FIELDS[target]} is already taken by the column “{used[target]}”"
        else:
            used[target] = column
    if "email" not in used:
        problems.setdefault("mapping", "map one column to Email: it identifies each candidate")
    if "full_name" in used and ({"first_name", "last_name"} & used.keys()):
        problems[used["full_name"]] = "use either a full-name column or first and last name"
    return problems


def clean_tags(value: str | list[str] | None) -> list[str]:
    """Tags typed by a person (``a, b; c``) → a sorted list; refuses names that are too long."""
    if value is None:
        return []
    items = value if isinstance(value, list) else _LIST_SPLIT.split(value)
    if not all(isinstance(item, str) for item in items):
        raise ValidationError("tags are not valid", {"tags": "must be a list of names"})
    tags = sorted({item.strip().lower() for item in items if item.strip()})
    long = [t for t in tags if len(t) > MAX_TAG]
    if long:
        raise ValidationError(
            "tags are not valid",
            {"tags": f"a tag is at most {MAX_TAG} characters; “{long[0][:24]}…” is longer"},
        )
    return tags


def new_import(
    csv_file: CsvFile,
    filename: str,
    now: datetime,
    *,
    mapping: dict[str, str] | None = None,
    tags: list[str] | None = None,
    unknown: str = ATTRIBUTE,
    created_by_id: int | None = None,
) -> Import:
    """An Import (not yet added to a session) with the proposed mapping, overridden by ours."""
    proposal = propose_mapping(csv_file.header, unknown)
    if mapping:
        problems = check_mapping(csv_file.header, {**proposal, **mapping})
        if problems:
            raise ValidationError("the column mapping is not valid", problems)
        proposal.update(mapping)
    return Import(
        filename=(filename or "upload.csv")[:255],
        content=csv_file.text,
        mapping=proposal,
        tags=clean_tags(list(tags or [])),
        status=ImportStatus.UPLOADED,
        total_rows=csv_file.total_rows,
        processed_rows=0,
        created_count=0,
        updated_count=0,
        rejected_count=0,
        errors=[],
        created_by_id=created_by_id,
        created_at=now,
    )


def create_import(
    session: Session,
    data: bytes,
    filename: str,
    now: datetime,
    *,
    created_by_id: int | None = None,
    mapping: dict[str, str] | None = None,
    tags: list[str] | None = None,
    unknown: str = ATTRIBUTE,
) -> tuple[Import, list[str]]:
    """Check an upload and store it as an import awaiting its mapping; returns (job, notes)."""
    csv_file = read_csv(data)
    job = new_import(
        csv_file,
        filename,
        now,
        mapping=mapping,
        tags=tags,
        unknown=unknown,
        created_by_id=created_by_id,
    )
    session.add(job)
    session.flush()
    return job, csv_file.notes


def set_mapping(job: Import, mapping: dict[str, str], tags: str | list[str] | None) -> None:
    """Change the mapping and tags of an import not yet started; all problems are raised at once."""
    if job.status != ImportStatus.UPLOADED:
        raise ValidationError("this import has started already", {"mapping": "already started"})
    problems = check_mapping(header_of(job), mapping)
    try:
        clean = clean_tags(tags)
    except ValidationError as exc:
        problems.update(exc.fields)
    if problems:
        raise ValidationError("the column mapping is not valid", problems)
    job.mapping = dict(mapping)
    job.tags = clean


def header_of(job: Import) -> list[str]:
    """The column names of the job's CSV."""
    return _header(job.content, sniff_delimiter(job.content))[0]


def column_samples(job: Import, n: int = 3) -> dict[str, list[str]]:
    """A few non-empty values of each column, to help whoever maps it."""
    header = header_of(job)
    samples: dict[str, list[str]] = {column: [] for column in header}
    for _, cells, _ in islice(_records(job.content, sniff_delimiter(job.content)), 50):
        for column, value in zip(header, cells or [], strict=False):
            if value.strip() and len(samples[column]) < n:
                samples[column].append(value.strip()[:80])
    return samples


# --- rows ---------------------------------------------------------------------------------


def _row(
    line: int, header: list[str], cells: list[str], mapping: dict[str, str], tags: list[str]
) -> Row:
    """Turn one record into candidate data and check it with the model ``upsert_candidate`` uses."""
    row = Row(line=line, data={})
    column_of = {target: column for column, target in reversed(mapping.items())}

    def fail(column: str, reason: str) -> None:
        row.errors.append({"line": line, "field": column, "reason": reason})

    if any(c.strip() for c in cells[len(header) :]):
        fail(
            "",
            f"the line has {len(cells)} values but the header has {len(header)} columns "
            "(is a value holding the delimiter without quotes?)",
        )
    row_tags: list[str] = list(tags)
    for column, value in zip(header, cells, strict=False):
        target, value = mapping.get(column, IGNORE), value.strip()
        if not value or target == IGNORE:
            continue  # an empty cell never erases what is stored
        if len(value) > MAX_CELL:
            fail(column, f"the value is {len(value):,} characters long (at most {MAX_CELL:,}); "
                 "is a quote left open?")  # fmt: skip
        elif target == "tags":
            row_tags.extend(_LIST_SPLIT.split(value))
        else:
            _put(row.data, target, column, value)
    if row_tags:
        try:
            row.data["tags"] = clean_tags(row_tags)
        except ValidationError as exc:
            fail(column_of.get("tags", "tags"), exc.fields["tags"])
    try:
        row.email = parse(CandidateIn, row.data).email
    except ValidationError as exc:
        for name, reason in exc.fields.items():
            fail(_column_for(name, column_of), reason)
    return row


def _put(data: dict[str, Any], target: str, column: str, value: str) -> None:
    """Put one cell's value where the candidate model takes it."""
    if target == ATTRIBUTE:
        data.setdefault("attributes", {})[attribute_key(column)] = value
    elif target == "skills":
        # Stored lower-cased and sorted (as the model does); the preview shows that form.
        skills = {s.strip().lower() for s in _LIST_SPLIT.split(value) if s.strip()}
        data["skills"] = sorted(skills | set(data.get("skills", [])))
    elif target == "full_name":
        first, _, last = value.partition(" ")
        data["first_name"], data["last_name"] = first, last.strip()
    elif target in CONSENT_FIELDS:
        data.setdefault("consent", {})[CONSENT_FIELDS[target]] = (
            _zoned(value) if target == "consent_at" else value
        )
    else:
        data[target] = value


def _column_for(name: str, column_of: dict[str, str]) -> str:
    """The CSV column a problem reported on candidate field ``name`` comes from."""
    name = name.split("[")[0]  # skills[3]: the skills column
    target = {
        "consent.at": "consent_at",
        "consent.basis": "consent_basis",
        "consent.source": "consent_source",
        "consent": "consent_basis",
    }.get(name, name)
    if target in ("first_name", "last_name") and target not in column_of:
        target = "full_name"
    return column_of.get(target, name)


def _zoned(value: str) -> str:
    """Spreadsheets write times without a zone; read those as UTC, leave the rest to validation."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def iter_rows(job: Import) -> Iterator[Row]:
    """Every record of the job's CSV as a checked Row, in file order; repeats of an address fail."""
    text = job.content
    delimiter = sniff_delimiter(text)
    header, _ = _header(text, delimiter)
    mapping = dict(job.mapping or {})
    tags = list(job.tags or [])
    first_seen: dict[str, int] = {}
    for line, cells, unreadable in _records(text, delimiter):
        if cells is None:
            yield Row(
                line=line, data={}, errors=[{"line": line, "field": "", "reason": unreadable}]
            )
            continue
        row = _row(line, header, cells, mapping, tags)
        if not row.errors and row.email in first_seen:
            column = next((c for c, t in mapping.items() if t == "email"), "email")
            row.errors.append(
                {
                    "line": line,
                    "field": column,
                    "reason": f"{row.email} is already on line {first_seen[row.email]}; "
                    "each address is imported once",
                }
            )
        elif not row.errors:
            first_seen[row.email] = line
        yield row


def preview(job: Import, n: int = 5) -> list[Row]:
    """The first ``n`` rows as they would be imported, with their problems."""
    return list(islice(iter_rows(job), n))


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Lists of up to ``size`` rows, taken from the stream as they are needed."""
    while batch := list(islice(rows, size)):
        yield batch


def dry_run(session: Session, job: Import, batch: int = 500) -> Report:
    """Check every row as the import will and count would-create / would-update; writes nothing."""
    _require_mapping(job)
    report = Report(dry_run=True)
    for rows in _batches(iter_rows(job), batch):
        good = [r for r in rows if not r.errors]
        known = set(
            session.scalars(
                select(Candidate.email).where(Candidate.email.in_([r.email for r in good]))
            )
        )
        report.total_rows += len(rows)
        report.updated += sum(1 for r in good if r.email in known)
        report.created += sum(1 for r in good if r.email not in known)
        for row in rows:
            if row.errors:
                _reject(report, row.errors)
    return report


def _reject(report: Report, errors: list[dict[str, Any]]) -> None:
    """Count a bad row and keep its problems, up to MAX_STORED_ERRORS."""
    report.rejected_count += 1
    room = MAX_STORED_ERRORS - len(report.rejected)
    report.rejected.extend(errors[: max(room, 0)])


# --- the import ---------------------------------------------------------------------------


def start(job: Import) -> None:
    """Mark an uploaded import as started (the job runs it); refuses one with no good mapping."""
    if job.status != ImportStatus.UPLOADED:
        raise ValidationError("this import has started already", {"import": job.status})
    _require_mapping(job)
    job.status = ImportStatus.RUNNING


def _require_mapping(job: Import) -> None:
    """Refuse to check or run an import whose mapping is not complete."""
    problems = check_mapping(header_of(job), job.mapping)
    if problems:
        raise ValidationError("the column mapping is not valid", problems)


def run_import(
    session: Session,
    job_id: int,
    now: datetime,
    batch: int = 500,
    clock: Callable[[], datetime] | None = None,
) -> Import:
    """Write the good rows of an import in batches, record the bad ones, commit after each batch.

    A job that stopped half-way (a killed worker) resumes after its last committed batch: the
    batch's candidates and the job's counters are committed together. A finished job is left
    as it is, so a repeated delivery of the RQ job changes nothing. Each commit also records a
    heartbeat (``clock``'s time, else ``now``), so the scheduler can tell a stalled import.
    """
    beat = clock or (lambda: now)
    job = session.get(Import, job_id)
    if job is None:
        raise NotFound(f"no import {job_id}")
    if job.status in (ImportStatus.DONE, ImportStatus.FAILED):
        return job
    try:
        job.status = ImportStatus.RUNNING
        job.heartbeat_at = beat()
        session.commit()
        rows = islice(iter_rows(job), job.processed_rows, None)
        for chunk in _batches(rows, batch):
            try:
                outcome = _write(session, chunk, now)
            except Exception:  # noqa: BLE001 - one bad row must not cost the batch
                session.rollback()
                log.exception("import %s: batch failed, retrying row by row", job_id)
                outcome = _write_one_by_one(session, chunk, now)
            job = session.get(Import, job_id)
            job.processed_rows += len(chunk)
            job.created_count += outcome.created
            job.updated_count += outcome.updated
            job.rejected_count += outcome.rejected_count
            room = MAX_STORED_ERRORS - len(job.errors)
            if outcome.rejected and room > 0:
                job.errors = [*job.errors, *outcome.rejected[:room]]
            job.heartbeat_at = beat()
            session.commit()
        job.status = ImportStatus.DONE
        job.finished_at = now
        session.commit()
    except Exception as exc:  # noqa: BLE001 - the job must end "failed", never stay "running"
        log.exception("import %s failed", job_id)
        session.rollback()
        job = session.get(Import, job_id)
        job.status = ImportStatus.FAILED
        job.finished_at = now
        job.errors = [
            *job.errors,
            {
                "line": None,
                "field": "",
                "reason": f"the import stopped: {exc.__class__.__name__}: {str(exc)[:300]}",
            },
        ]
        session.commit()
    return job


def claim_stalled(session: Session, now: datetime, after: timedelta) -> list[int]:
    """Running imports with no heartbeat for ``after`` (their worker died): the ids to run again.

    Each is claimed by moving its heartbeat to ``now`` in the same UPDATE, so two schedulers
    never both hand it out, and it is not handed out again before another ``after`` passes.
    """
    stale = or_(Import.heartbeat_at.is_(None), Import.heartbeat_at < now - after)
    ids = list(
        session.scalars(select(Import.id).where(Import.status == ImportStatus.RUNNING, stale))
    )
    if not ids:
        return []
    claimed = session.scalars(
        update(Import)
        .where(Import.id.in_(ids), Import.status == ImportStatus.RUNNING, stale)
        .values(heartbeat_at=now)
        .returning(Import.id)
    )
    return sorted(claimed)


def _write(session: Session, rows: list[Row], now: datetime) -> Report:
    """Save the good rows of one batch (not committed); bad rows are counted and kept."""
    outcome = Report()
    good = [r.email for r in rows if not r.errors]
    # One query for the batch: the stored tags and attributes that an import adds to.
    existing = {
        c.email: c
        for c in (
            session.scalars(select(Candidate).where(Candidate.email.in_(good))) if good else []
        )
    }
    saved = []
    for row in rows:
        if row.errors:
            _reject(outcome, row.errors)
            continue
        candidate, created = save_candidate(
            session, _merged(row, existing.get(row.email)), now, segments=False
        )
        saved.append(candidate)
        if created:
            outcome.created += 1
        else:
            outcome.updated += 1
    session.flush()
    check_segments(session, now, [c.id for c in saved])
    return outcome


def _write_one_by_one(session: Session, rows: list[Row], now: datetime) -> Report:
    """Commit each row on its own, so the one that fails is rejected and the others land."""
    outcome = Report()
    for row in rows:
        try:
            part = _write(session, [row], now)
            session.commit()
        except Exception as exc:  # noqa: BLE001 - reported on the row, the import goes on
            session.rollback()
            part = Report()
            _reject(
                part,
                [
                    {
                        "line": row.line,
                        "field": "",
                        "reason": f"could not be saved: {exc.__class__.__name__}",
                    }
                ],
            )
        outcome.created += part.created
        outcome.updated += part.updated
        outcome.rejected_count += part.rejected_count
        outcome.rejected.extend(part.rejected)
    return outcome


def _merged(row: Row, candidate: Candidate | None) -> dict[str, Any]:
    """An import adds tags and attributes to what a candidate has; it never takes any away."""
    data = dict(row.data)
    if candidate is None:
        return data
    if "tags" in data:
        data["tags"] = sorted(set(candidate.tag_names) | set(data["tags"]))
    if "attributes" in data:
        data["attributes"] = {**(candidate.attributes or {}), **data["attributes"]}
    if "consent" in data:
        stored = {
            "basis": candidate.consent_basis,
            "source": candidate.consent_source,
            "at": candidate.consent_at.isoformat() if candidate.consent_at else None,
        }
        data["consent"] = {**stored, **data["consent"]}
    return data


def recent_imports(session: Session, limit: int = 50) -> list[tuple[Import, str | None]]:
    """The newest imports with who uploaded them, without their CSV text."""
    query = (
        select(Import, User.email)
        .outerjoin(User, User.id == Import.created_by_id)
        .options(defer(Import.content), defer(Import.errors))
        .order_by(Import.id.desc())
        .limit(limit)
    )
    return [(job, email) for job, email in session.execute(query)]


def get_import(session: Session, job_id: int, with_content: bool = True) -> Import | None:
    """An import by id; without its CSV text (which may be megabytes) unless asked."""
    options = [] if with_content else [defer(Import.content)]
    return session.get(Import, job_id, options=options)


def progress(session: Session, job_id: int) -> dict[str, Any] | None:
    """Status and counters of an import, cheap enough to poll every second."""
    job = session.scalar(
        select(Import)
        .where(Import.id == job_id)
        .options(
            load_only(
                Import.id,
                Import.filename,
                Import.status,
                Import.total_rows,
                Import.processed_rows,
                Import.created_count,
                Import.updated_count,
                Import.rejected_count,
            )
        )
        .execution_options(populate_existing=True)
    )
    if job is None:
        return None
    return import_report(job, with_rejected=False)


def import_report(job: Import, with_rejected: bool = True) -> dict[str, Any]:
    """The state and report of an import, as the progress endpoint and the API give it."""
    total = job.total_rows or 0
    report: dict[str, Any] = {
        "id": job.id,
        "filename": job.filename,
        "status": job.status,
        "total_rows": total,
        "processed_rows": job.processed_rows,
        "percent": round(100 * job.processed_rows / total) if total else 100,
        "created": job.created_count,
        "updated": job.updated_count,
        "rejected_count": job.rejected_count,
        "finished": job.status in (ImportStatus.DONE, ImportStatus.FAILED),
    }
    if with_rejected:
        report["rejected"] = list(job.errors or [])
    return report


# --- after an import: its rejected rows as a file, its candidates as a selection ----------


def rejected_rows(job: Import) -> Iterator[list[str]]:
    """The import's rejected rows as CSV rows: the file's own columns, then its line and why,
    so the file can be fixed in a spreadsheet and uploaded again."""
    text = job.content
    delimiter = sniff_delimiter(text)
    header, _ = _header(text, delimiter)
    yield [*header, "line", "problem"]
    # Problems the import itself met (a row that could not be saved) come from the stored
    # report; the checks of every row are made again, so none is lost past the stored ones.
    stored: dict[int, list[str]] = {}
    for error in job.errors or []:
        stored.setdefault(int(error.get("line") or 0), []).append(_problem(error))
    cells_at = {line: cells for line, cells, _ in _records(text, delimiter)}
    for row in iter_rows(job):
        problems = [_problem(error) for error in row.errors] or stored.get(row.line, [])
        if not problems:
            continue
        cells = list(cells_at.get(row.line) or [])
        cells += [""] * (len(header) - len(cells))
        yield [*cells[: len(header)], str(row.line), "; ".join(dict.fromkeys(problems))]


def _problem(error: dict[str, Any]) -> str:
    field = error.get("field") or ""
    return f"{field}: {error.get('reason', '')}" if field else str(error.get("reason", ""))


def imported_emails(job: Import) -> list[str]:
    """The addresses of the rows an import wrote (or would write)."""
    return [row.email for row in iter_rows(job) if not row.errors and row.email]


def imported_ids(job: Import) -> Any:
    """SELECT the ids of the candidates an import created or updated."""
    emails = imported_emails(job)
    # Rendered into the statement: an import may hold more addresses than a driver binds.
    wanted = bindparam("imported", value=emails, expanding=True, literal_execute=True)
    return select(Candidate.id).where(Candidate.email.in_(wanted))
