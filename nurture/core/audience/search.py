"""Finding candidates for the admin: search, filters, sorting, paging, bulk tagging, CSV export,
and what the admin shows and does on one candidate's page (timeline, profile edits, enrolling)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Select,
    and_,
    case,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Text

from nurture.core.audience import engagement, segments
from nurture.core.errors import ValidationError
from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    Event,
    Message,
    Step,
    Tag,
)
from nurture.models.base import UTCDateTime
from nurture.models.candidates import candidate_tags

PER_PAGE = 50
# Counting every match of a filter costs a full scan; past this many the list says "10,000+".
COUNT_CAP = 10_000
# DISTINCT stage/source scans the table (no index); above this many candidates the filter menus
# are cached for FACETS_TTL rather than recomputed on every page.
FACETS_FRESH_BELOW = 20_000
FACETS_TTL = timedelta(minutes=5)
MAX_QUERY = 200
MAX_TAG = 100  # the length of tags.name
ENGAGED_DAYS = 30

SORTS = {
    "name": "Name",
    "created": "Created",
    "activity": "Last activity",
    "score": "Engagement score",
}
# The direction a column sorts in when its header is first clicked.
DEFAULT_DIRECTION = {"name": "asc", "created": "desc", "activity": "desc", "score": "desc"}
ENGAGEMENT = {
    "engaged_30d": f"Engaged in the last {ENGAGED_DAYS} days",
    "not_engaged_30d": f"Not engaged in the last {ENGAGED_DAYS} days",
    "never_opened": "Never opened",
}
STATUSES = [status.value for status in CandidateStatus]

EXPORT_COLUMNS = [
    "email", "first_name", "last_name", "role", "stage", "rejection_reason", "skills", "tags",
    "source", "status", "engagement_score", "created_at",
]  # fmt: skip
# OWASP "CSV Injection": a cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# ---------------------------------------------------------------------------------------------
# The query a list page, a bulk tag and an export share
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateFilters:
    """What the candidate list was asked for: search, filters, sort and page."""

    q: str = ""
    tag: str = ""
    status: str = ""
    stage: str = ""
    source: str = ""
    engagement: str = ""
    sort: str = "created"
    direction: str = "desc"
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> CandidateFilters:
        """Parse request arguments; every bad one is reported at its name, none is guessed."""
        errors: dict[str, str] = {}
        q = " ".join(_text(args, "q", MAX_QUERY, errors).split())
        tag = _text(args, "tag", MAX_TAG, errors).lower()
        stage, source = _text(args, "stage", 100, errors), _text(args, "source", 100, errors)
        status = _choice(args, "status", STATUSES, errors, "unknown status")
        engagement = _choice(args, "engagement", ENGAGEMENT, errors, "unknown engagement filter")
        sort, direction = _order(args, errors)
        page = _page_number(args, errors)
        if errors:
            raise ValidationError("some list options are not valid", errors)
        return cls(q, tag, status, stage, source, engagement, sort, direction, page)

    def to_args(self, **changes: Any) -> dict[str, str]:
        """The request arguments that give this list back (defaults left out), with changes."""
        values = asdict(replace(self, **changes))
        values["dir"] = values.pop("direction")
        defaults = {"sort": "created", "page": 1, "dir": DEFAULT_DIRECTION[values["sort"]]}
        return {
            key: str(value)
            for key, value in values.items()
            if value not in ("", None) and defaults.get(key) != value
        }

    def sort_args(self, key: str) -> dict[str, str]:
        """This list sorted by ``key`` from its first page; sorting by the current column again
        reverses it (a column header's link)."""
        if key == self.sort:
            direction = "asc" if self.direction == "desc" else "desc"
        else:
            direction = DEFAULT_DIRECTION[key]
        return self.to_args(sort=key, direction=direction, page=1)

    @property
    def filter_args(self) -> dict[str, str]:
        """Only the search and filters: what a bulk tag or an export applies to."""
        return self.to_args(sort="created", direction="desc", page=1)

    @property
    def is_filtered(self) -> bool:
        """True when any search or filter narrows the list."""
        return any((self.q, self.tag, self.status, self.stage, self.source, self.engagement))


def _text(args: Mapping[str, str], name: str, limit: int, errors: dict[str, str]) -> str:
    """A free-text argument, stripped; too long is an error at its name (and "")."""
    value = (args.get(name) or "").strip()
    if len(value) > limit:
        errors[name] = f"must be at most {limit} characters"
        return ""
    return value


def _choice(
    args: Mapping[str, str],
    name: str,
    known: Iterable[str],
    errors: dict[str, str],
    unknown: str,
) -> str:
    """An argument that must be one of ``known`` ("" for none); else ``unknown`` at its name."""
    value = (args.get(name) or "").strip()
    choices = list(known)
    if value and value not in choices:
        errors[name] = f"{unknown} {value!r}; choose one of {', '.join(choices)}"
    return value


def _order(args: Mapping[str, str], errors: dict[str, str]) -> tuple[str, str]:
    """The sort column and its direction (the column's own default direction unless given)."""
    sort = (args.get("sort") or "created").strip()
    if sort not in SORTS:
        errors["sort"] = f"cannot sort by {sort!r}; choose one of {', '.join(SORTS)}"
        sort = "created"
    direction = (args.get("dir") or DEFAULT_DIRECTION[sort]).strip()
    if direction not in ("asc", "desc"):
        errors["dir"] = "must be asc or desc"
    return sort, direction


def _page_number(args: Mapping[str, str], errors: dict[str, str]) -> int:
    """The page, a whole number from 1 (eight digits at most)."""
    raw_page = (args.get("page") or "1").strip()
    page = int(raw_page) if raw_page.isdigit() and len(raw_page) < 9 else 0
    if page < 1:
        errors["page"] = "must be a whole number from 1"
    return page


def _like(value: str) -> str:
    """A LIKE pattern that finds ``value`` anywhere, with its own % and _ taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class contains_text(FunctionElement[bool]):  # noqa: N801 - used like a SQL function
    """Any of the columns (after the LIKE pattern, the first argument) contains the pattern,
    ignoring case; compiled the cheapest way on each database."""

    type = Boolean()
    inherit_cache = True
    name = "contains_text"


@compiles(contains_text)
def _contains_text_postgresql(element: contains_text, compiler: Any, **kw: Any) -> str:
    # One ILIKE over the columns joined by spaces: half the cost of one ILIKE per column, and
    # the expression a pg_trgm index can serve (see SEARCH_INDEX_POSTGRESQL).
    pattern, *columns = (compiler.process(clause, **kw) for clause in element.clauses)
    joined = " || ' ' || ".join(columns)
    return f"(({joined}) ILIKE {pattern} ESCAPE '\\')"


@compiles(contains_text, "sqlite")
def _contains_text_sqlite(element: contains_text, compiler: Any, **kw: Any) -> str:
    # One LIKE per column, which SQLite stops at the first match: twice as fast as joining.
    # Its LIKE already ignores ASCII case and its lower() knows no other letters, so
    # SQLAlchemy's ilike (lower(x) LIKE lower(y)) would only double the cost of the scan.
    pattern, *columns = (compiler.process(clause, **kw) for clause in element.clauses)
    return "(" + " OR ".join(f"{column} LIKE {pattern} ESCAPE '\\'" for column in columns) + ")"


# The columns a search looks in, in the order SEARCH_INDEX_POSTGRESQL joins them.
SEARCH_COLUMNS = (
    Candidate.first_name, Candidate.last_name, Candidate.email, Candidate.role,
    func.cast(Candidate.skills, Text),  # the JSON text: '["go", "python"]'
)  # fmt: skip
# Proposed for PostgreSQL (not in the migrations): substring search through an index.
SEARCH_INDEX_POSTGRESQL = (
    "CREATE INDEX ix_candidates_search ON candidates USING gin "
    "((first_name || ' ' || last_name || ' ' || email || ' ' || role || ' ' || skills::text) "
    "gin_trgm_ops)"
)


class latest_of(FunctionElement[datetime]):  # noqa: N801 - used like a SQL function
    """The latest of some nullable timestamps, NULL when all are."""

    type = UTCDateTime()
    inherit_cache = True
    name = "latest_of"


@compiles(latest_of)
def _latest_of_postgresql(element: latest_of, compiler: Any, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"  # GREATEST skips NULLs


@compiles(latest_of, "sqlite")
def _latest_of_sqlite(element: latest_of, compiler: Any, **kw: Any) -> str:
    # SQLite's max() of several values is NULL if any is; its timestamps are ISO text.
    values = ", ".join(
        f"COALESCE({compiler.process(clause, **kw)}, '')" for clause in element.clauses
    )
    return f"NULLIF(MAX({values}), '')"


# When a person last did something with our mail: the engagement summary that
# tracking.record_event keeps on the candidate (human opens, clicks and replies only).
LAST_ACTIVITY = latest_of(Candidate.last_opened_at, Candidate.last_clicked_at,
                          Candidate.last_replied_at)  # fmt: skip

# The engagement filters are segment rules, so the list and segments agree on what they mean.
_OPENED_OR_CLICKED: list[dict[str, Any]] = [{"opened": {}}, {"clicked": {}}]
_RECENTLY = [{"opened": {"within_days": ENGAGED_DAYS}}, {"clicked": {"within_days": ENGAGED_DAYS}}]
ENGAGEMENT_RULES: dict[str, dict[str, Any]] = {
    "engaged_30d": {"any": _RECENTLY},
    "not_engaged_30d": {"not": {"any": _RECENTLY}},
    "never_opened": {"not": {"any": _OPENED_OR_CLICKED}},
}


def conditions(filters: CandidateFilters, now: datetime) -> list[Any]:
    """The WHERE clauses of the search and filters (sort and page play no part)."""
    where: list[Any] = []
    # Every word must appear somewhere: "maya python" finds Maya who knows Python.
    for word in filters.q.split():
        where.append(contains_text(_like(word), *SEARCH_COLUMNS))
    if filters.tag:
        tagged = (
            select(candidate_tags.c.candidate_id)
            .join(Tag, Tag.id == candidate_tags.c.tag_id)
            .where(Tag.name == filters.tag)
        )
        where.append(Candidate.id.in_(tagged))
    if filters.status:
        where.append(Candidate.status == filters.status)
    if filters.stage:
        where.append(Candidate.stage == filters.stage)
    if filters.source:
        where.append(Candidate.source == filters.source)
    if filters.engagement:
        where.append(segments.compile_rules(ENGAGEMENT_RULES[filters.engagement], now))
    return where


def _order_by(filters: CandidateFilters) -> list[Any]:
    """ORDER BY for the chosen column; the id breaks ties so pages never overlap."""
    desc = filters.direction == "desc"

    def way(column: Any) -> Any:
        return column.desc() if desc else column.asc()

    if filters.sort == "name":
        nameless = case((and_(Candidate.first_name == "", Candidate.last_name == ""), 1), else_=0)
        # People without a name go last whichever way the list is sorted.
        return [
            nameless,
            way(func.lower(Candidate.first_name)),
            way(func.lower(Candidate.last_name)),
            way(Candidate.id),
        ]
    if filters.sort == "activity":
        return [way(LAST_ACTIVITY).nulls_last(), way(Candidate.id)]
    if filters.sort == "score":
        # Points sort exactly as the scores they stand for (one divisor for everyone).
        return [way(Candidate.engagement_points), way(Candidate.id)]
    # ix_candidates_created serves this (on SQLite with the rowid as its hidden last column).
    return [way(Candidate.created_at), way(Candidate.id)]


def build_select(filters: CandidateFilters, now: datetime, *columns: Any) -> Select[Any]:
    """SELECT candidates (or the given columns) matching the filters, in the chosen order."""
    return (
        select(*(columns or (Candidate,)))
        .where(*conditions(filters, now))
        .order_by(*_order_by(filters))
    )


def matching_ids(filters: CandidateFilters, now: datetime) -> Select[int]:
    """SELECT the ids of every candidate matching the search and filters."""
    return select(Candidate.id).where(*conditions(filters, now))


# ---------------------------------------------------------------------------------------------
# One page of the list
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """A candidate as a list row."""

    candidate: Candidate

    @property
    def last_activity(self) -> datetime | None:
        """When they last opened, clicked or replied (what LAST_ACTIVITY sorts by)."""
        c = self.candidate
        times = [t for t in (c.last_opened_at, c.last_clicked_at, c.last_replied_at) if t]
        return max(times, default=None)


@dataclass
class Page:
    """One page of candidates and where it sits in the whole list."""

    rows: list[Row]
    number: int
    per_page: int
    total: int
    # True when there are more matches than were counted (``total`` is then a lower bound).
    total_capped: bool
    has_next: bool

    @property
    def first(self) -> int:
        """Position of the first row on this page (1-based), 0 when empty."""
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        """Position of the last row on this page."""
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def pages(self) -> int | None:
        """How many pages there are, when the total is known exactly."""
        if self.total_capped:
            return None
        return max(1, -(-self.total // self.per_page))

    @property
    def total_label(self) -> str:
        """``12,345`` or ``10,000+`` when the count stopped at the cap."""
        return f"{self.total:,}+" if self.total_capped else f"{self.total:,}"

    @property
    def summary(self) -> str:
        """``51–100 of 12,345`` (``of 10,000+`` when counting stopped early)."""
        if not self.rows:
            return f"No candidates on page {self.number}" if self.number > 1 else "No candidates"
        return f"{self.first:,}–{self.last:,} of {self.total_label}"


def count_matching(
    session: Session, filters: CandidateFilters, now: datetime, cap: int | None = COUNT_CAP
) -> tuple[int, bool]:
    """How many candidates match, counting no further than ``cap``; returns (count, capped)."""
    ids = matching_ids(filters, now)
    if cap is None:
        return session.scalar(select(func.count()).select_from(ids.subquery())) or 0, False
    counted = session.scalar(select(func.count()).select_from(ids.limit(cap + 1).subquery())) or 0
    return min(counted, cap), counted > cap


def page(
    session: Session,
    filters: CandidateFilters,
    now: datetime,
    per_page: int = PER_PAGE,
    count_cap: int | None = COUNT_CAP,
) -> Page:
    """One page of the list and a total (capped when counting a filter would cost a lot)."""
    offset = (filters.page - 1) * per_page
    # One row more than a page tells whether there is a next page without counting.
    # Sort only the ids, then load the page's rows: a sort that no index serves (name, last
    # activity) then moves narrow rows around instead of whole candidates.
    keys = build_select(filters, now, Candidate.id).limit(per_page + 1).offset(offset).subquery()
    statement = (
        select(Candidate).join(keys, keys.c.id == Candidate.id).order_by(*_order_by(filters))
    )
    candidates = list(session.scalars(statement))
    has_next = len(candidates) > per_page
    candidates = candidates[:per_page]
    if filters.page == 1 and not has_next:
        total, capped = len(candidates), False  # everything is on this page: no count needed
    elif not filters.is_filtered or count_cap is None:
        # COUNT(*) of a whole table is cheap (an index or the table's own count).
        total, capped = count_matching(session, filters, now, None)
    else:
        # Count at least as far as this page, so a deep page still says where it is.
        cap = max(count_cap, offset + len(candidates))
        total, capped = count_matching(session, filters, now, cap)
    return Page([Row(c) for c in candidates], filters.page, per_page, total, capped, has_next)


@dataclass
class Facets:
    """The values the filter menus offer."""

    tags: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


# database URL -> (when computed, stages, sources); only filled for big candidate tables.
_facet_cache: dict[str, tuple[datetime, list[str], list[str]]] = {}


def facets(session: Session, now: datetime) -> Facets:
    """Tag names, stages and sources that exist, for the filter menus."""
    tags = list(session.scalars(select(Tag.name).order_by(Tag.name).limit(500)))
    key = str(session.get_bind().engine.url)
    cached = _facet_cache.get(key)
    if cached is not None and timedelta(0) <= now - cached[0] < FACETS_TTL:
        return Facets(tags, cached[1], cached[2])

    def distinct(column: Any) -> list[str]:
        return list(
            session.scalars(
                select(column).where(column != "").group_by(column).order_by(column).limit(200)
            )
        )

    stages, sources = distinct(Candidate.stage), distinct(Candidate.source)
    if (session.scalar(select(func.count()).select_from(Candidate)) or 0) >= FACETS_FRESH_BELOW:
        _facet_cache[key] = (now, stages, sources)
    return Facets(tags, stages, sources)


# ---------------------------------------------------------------------------------------------
# Bulk tag and export
# ---------------------------------------------------------------------------------------------


def skill_counts(session: Session, query: str, limit: int = 20) -> list[tuple[str, int]]:
    """Skills candidates list (containing ``query``), with how many list each, most common
    first; read from the JSON lists on either database."""
    if session.get_bind().dialect.name == "postgresql":
        skills = func.jsonb_array_elements_text(Candidate.skills).table_valued("value")
    else:
        skills = func.json_each(Candidate.skills).table_valued("value")
    value = skills.c.value
    rows = session.execute(
        select(value, func.count())
        .select_from(Candidate)
        .join(skills, true())
        .where(func.lower(value).contains(query.lower(), autoescape=True))
        .group_by(value)
        .order_by(func.count().desc(), value)
        .limit(limit)
    )
    return [(str(skill), n) for skill, n in rows]


def clean_tag(value: Any) -> str:
    """A tag name as nurture stores it (trimmed, lower case), or ValidationError at ``tag``."""
    name = value.strip().lower() if isinstance(value, str) else ""
    if not name:
        raise ValidationError("a tag is required", {"tag": "type the tag to add"})
    if len(name) > MAX_TAG:
        raise ValidationError("tag too long", {"tag": f"must be at most {MAX_TAG} characters"})
    return name


def neutralise(value: str) -> str:
    """Make a cell inert in spreadsheet programs: a leading formula character gets a quote."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def export_rows(
    session: Session,
    filters: CandidateFilters,
    now: datetime,
    chunk: int = 1000,
    only: Select[int] | None = None,
) -> Iterator[list[str]]:
    """The export's header, then one row per matching candidate (of ``only``, a select of ids,
    when given: a segment, an import, the rows ticked), read ``chunk`` at a time."""
    yield list(EXPORT_COLUMNS)
    columns = [
        Candidate.id, Candidate.email, Candidate.first_name, Candidate.last_name, Candidate.role,
        Candidate.stage, Candidate.rejection_reason, Candidate.skills, Candidate.source,
        Candidate.status, Candidate.engagement_points, Candidate.created_at,
    ]  # fmt: skip
    where = conditions(filters, now)
    if only is not None:
        where.append(Candidate.id.in_(only))
    after = 0
    while True:
        # Keyset on the id: each chunk is a short query, whatever the export's size.
        batch = session.execute(
            select(*columns).where(*where, Candidate.id > after).order_by(Candidate.id).limit(chunk)
        ).all()
        if not batch:
            return
        ids = [row.id for row in batch]
        tags: dict[int, list[str]] = {}
        for candidate_id, name in session.execute(
            select(candidate_tags.c.candidate_id, Tag.name)
            .join(Tag, Tag.id == candidate_tags.c.tag_id)
            .where(candidate_tags.c.candidate_id.in_(ids))
            .order_by(Tag.name)
        ):
            tags.setdefault(candidate_id, []).append(name)
        for row in batch:
            texts = [
                row.email, row.first_name, row.last_name, row.role, row.stage,
                row.rejection_reason, ";".join(row.skills or []), ";".join(tags.get(row.id, [])),
                row.source, row.status,
            ]  # fmt: skip
            yield [
                *(neutralise(text or "") for text in texts),
                f"{round(engagement.score(row.engagement_points, now), 2):g}",
                row.created_at.isoformat() if row.created_at else "",
            ]
        after = ids[-1]


def csv_lines(rows: Iterator[list[str]]) -> Iterator[str]:
    """CSV text for ``rows`` in pieces, starting with a BOM so Excel reads UTF-8 accents."""
    yield "\ufeff"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for count, row in enumerate(rows, 1):
        writer.writerow(row)
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# One candidate
# ---------------------------------------------------------------------------------------------


@dataclass
class TimelineItem:
    """A message or an event on a candidate's timeline."""

    at: datetime
    source: str  # "message" or "event"
    kind: str  # the message's state or the event's kind
    subject: str
    campaign: str
    url: str
    machine: bool
    error: str
    message_id: int | None
    value: str = ""  # a reply's subject, "hard"/"soft" for a bounce, a rating
    # A queued mail held back (cap, window, pause, retry): not before then.
    until: datetime | None = None
    # The template the mail is made from, for a queued mail that has no subject yet.
    template: str = ""
    note: str = ""  # what the candidate wrote: why they unsubscribed, a rating's comment

    @property
    def link(self) -> str:
        """The clicked address when it is a web link (inbound events keep a mid: URL)."""
        is_web = self.url.lower().startswith(("https://", "http://"))
        return self.url if self.kind == "click" and is_web else ""


@dataclass
class Timeline:
    """The latest ``len(items)`` of ``total`` timeline entries, oldest first."""

    items: list[TimelineItem]
    total: int

    @property
    def earlier(self) -> int:
        """How many older entries are not shown."""
        return self.total - len(self.items)


def timeline(session: Session, candidate_id: int, limit: int = 200) -> Timeline:
    """Every message and event of a candidate in time order (the latest ``limit`` of them)."""
    messages: Select[*tuple[Any, ...]] = (
        select(
            func.coalesce(Message.sent_at, Message.claimed_at, Message.queued_at).label("at"),
            literal_column("'message'").label("source"),
            Message.state.label("kind"),
            Message.subject.label("subject"),
            Campaign.name.label("campaign"),
            literal_column("''").label("url"),
            literal(False).label("machine"),
            Message.error.label("error"),
            Message.id.label("message_id"),
            literal_column("''").label("value"),
            literal(0).label("tiebreak"),
            Message.id.label("row_id"),
            Message.retry_at.label("until"),
            func.coalesce(Step.template, "").label("template"),
            literal_column("''").label("note"),
        )
        .join(Campaign, Campaign.id == Message.campaign_id)
        .outerjoin(Step, Step.id == Message.step_id)
        .where(Message.candidate_id == candidate_id)
    )
    about = Message.__table__.alias("about")
    events: Select[*tuple[Any, ...]] = (
        select(
            Event.created_at,
            literal_column("'event'"),
            Event.kind,
            func.coalesce(about.c.subject, ""),
            func.coalesce(Campaign.name, ""),
            Event.url,
            Event.machine,
            literal_column("''"),
            Event.message_id,
            Event.value,
            literal(1),  # a message before the events it caused when the times are equal
            Event.id,
            literal(None, UTCDateTime()),
            literal_column("''"),
            Event.note,
        )
        .outerjoin(about, about.c.id == Event.message_id)
        .outerjoin(Campaign, Campaign.id == about.c.campaign_id)
        .where(Event.candidate_id == candidate_id)
    )
    both = union_all(messages, events).subquery()
    latest = session.execute(
        select(both)
        .order_by(both.c.at.desc(), both.c.tiebreak.desc(), both.c.row_id.desc())
        .limit(limit)
    ).all()
    items = [
        TimelineItem(
            at=row.at, source=row.source, kind=row.kind, subject=row.subject or "",
            campaign=row.campaign or "", url=row.url or "", machine=bool(row.machine),
            error=row.error or "", message_id=row.message_id, value=row.value or "",
            until=_utc(row.until), template=row.template or "", note=row.note or "",
        )
        for row in reversed(latest)
    ]  # fmt: skip
    if len(items) < limit:
        total = len(items)
    else:
        total = (session.scalar(
            select(func.count()).select_from(Message).where(Message.candidate_id == candidate_id)
        ) or 0) + (session.scalar(
            select(func.count()).select_from(Event).where(Event.candidate_id == candidate_id)
        ) or 0)  # fmt: skip
    return Timeline(items, total)


def _utc(value: Any) -> datetime | None:
    """A time out of a UNION, which SQLite gives back as text."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class EnrolmentRow:
    """An enrolment with its campaign's name and length."""

    enrolment: Enrolment
    campaign: str
    steps: int


def enrolments(session: Session, candidate_id: int) -> list[EnrolmentRow]:
    """The candidate's enrolments, newest first."""
    rows = session.execute(
        select(Enrolment, Campaign)
        .join(Campaign, Campaign.id == Enrolment.campaign_id)
        .where(Enrolment.candidate_id == candidate_id)
        .order_by(Enrolment.created_at.desc(), Enrolment.id.desc())
    ).all()
    return [EnrolmentRow(e, c.name, len(c.steps)) for e, c in rows]


def active_campaigns(session: Session) -> list[Campaign]:
    """Campaigns a candidate can be enrolled into by hand: the active ones a team runs (the
    re-consent and referral mails are nurture's own, sent when their moment comes)."""
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.status == CampaignStatus.ACTIVE, Campaign.topic != "system")
            .order_by(Campaign.name)
        )
    )


# Profile form fields: the service's field names, so its errors land at the same names.
PROFILE_FIELDS = (
    "first_name", "last_name", "timezone", "language", "location", "role", "stage",
    "rejection_reason", "strengths", "source", "recruiter_name", "recruiter_email", "skills",
    "consent_basis", "consent_source", "consent_at", "attributes",
)  # fmt: skip
# Where the candidates service reports a problem -> the form field that shows it.
ERROR_FIELDS = {
    "consent": "consent_basis",
    "consent.basis": "consent_basis",
    "consent.source": "consent_source",
    "consent.at": "consent_at",
}


def profile_values(candidate: Candidate) -> dict[str, str]:
    """The candidate's profile as the text a form shows."""
    values = {name: getattr(candidate, name) or "" for name in PROFILE_FIELDS}
    values["skills"] = ", ".join(candidate.skills or [])
    values["consent_at"] = candidate.consent_at.isoformat() if candidate.consent_at else ""
    values["attributes"] = (
        json.dumps(candidate.attributes, indent=2, ensure_ascii=False)
        if candidate.attributes
        else ""
    )
    return values
