"""What the audience takes in: a candidate (from the API, the ATS, a CSV row or the admin's
edit form: one model for all four), an ATS event, and segments with their rules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, WithJsonSchema

from nurture.core.audience import segments
from nurture.core.errors import ValidationError
from nurture.core.inputs import (
    Email,
    Input,
    Language,
    OptionalEmail,
    Text,
    Zone,
    fail_at,
    problem,
)
from nurture.models import AtsEventType
from nurture.models.base import MAX_ID

# Fields a caller may set, with their longest accepted length (the columns' own).
TEXT_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "location": 200,
    "role": 200,
    "stage": 100,
    "rejection_reason": 200,
    "strengths": 5000,
    "source": 100,
    "recruiter_name": 200,
}
# Every free-text field of a candidate (what an erasure blanks).
TEXT_FIELDS = (*TEXT_LIMITS, "timezone", "language")
_STRINGS = "must be a list of strings"


def _aware_time(value: Any) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or len(value) > 64:
        raise problem("time", "must be an ISO-8601 time with a zone")
    return moment


def _strings(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise problem("strings", _STRINGS)
    return sorted({v.strip().lower() for v in value if v.strip()})


# A list of short names (skills, tags), stored lower-cased, sorted, once each.
Labels = Annotated[list[Annotated[str, Field(max_length=100)]], BeforeValidator(_strings)]
# An instant with its offset ("2026-02-27T10:00:00+01:00"); "" or null for none.
AwareTime = Annotated[
    datetime | None,
    PlainValidator(_aware_time),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}, {"type": "null"}]}
    ),
]


class Consent(Input):
    """On what basis the team may mail the candidate, where that came from, and since when."""

    basis: Annotated[str, Text(100)] = ""
    source: Annotated[str, Text(200)] = ""
    at: AwareTime = None


class CandidateIn(Input):
    """A candidate's fields; those left out (or null) keep their stored values on an update."""

    email: Email
    first_name: Annotated[str, Text(100)] | None = None
    last_name: Annotated[str, Text(100)] | None = None
    timezone: Annotated[Zone | None, Field(default=None)]
    # Which translation of each mail they get, and of the footer and public pages.
    language: Annotated[Language | None, Field(default=None)]
    location: Annotated[str, Text(200)] | None = None
    role: Annotated[str, Text(200)] | None = None
    stage: Annotated[str, Text(100)] | None = None
    rejection_reason: Annotated[str, Text(200)] | None = None
    strengths: Annotated[str, Text(5000)] | None = None
    source: Annotated[str, Text(100)] | None = None
    recruiter_name: Annotated[str, Text(200)] | None = None
    recruiter_email: OptionalEmail | None = None
    skills: Labels | None = None
    tags: Labels | None = None
    consent: Consent | None = None
    attributes: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        """The values to store: what was given, cleaned (names stripped, lists sorted)."""
        clean: dict[str, Any] = {
            name: getattr(self, name).strip()
            for name in (*TEXT_LIMITS, "timezone", "language")
            if getattr(self, name) is not None
        }
        for name in ("skills", "tags", "attributes"):
            if getattr(self, name) is not None:
                clean[name] = getattr(self, name)
        if self.recruiter_email:
            clean["recruiter_email"] = self.recruiter_email
        if self.consent is not None:
            clean["consent_basis"] = self.consent.basis
            clean["consent_source"] = self.consent.source
            if self.consent.at is not None:
                clean["consent_at"] = self.consent.at
        return clean


class AtsEventIn(Input):
    """What the ATS reports: a rejection enrols, a hire or a re-application ends drips."""

    type: AtsEventType
    candidate: CandidateIn


# --- segments -----------------------------------------------------------------------------------


def _rules(value: dict[str, Any]) -> dict[str, Any]:
    """The rule language's own check, whose errors name the bad part (``rules.all[2].op``)."""
    try:
        return segments.validate(value, "")
    except ValidationError as exc:
        raise fail_at("rules", [(_loc(path), msg) for path, msg in exc.fields.items()]) from None


def _loc(path: str) -> tuple[str | int, ...]:
    """``.all[2].op`` → ``("all", 2, "op")``."""
    parts: list[str | int] = []
    for piece in path.replace("[", ".[").split("."):
        if piece.startswith("["):
            parts.append(int(piece.strip("[]")))
        elif piece:
            parts.append(piece)
    return tuple(parts)


Rules = Annotated[
    dict[str, Any],
    AfterValidator(_rules),
    Field(
        description='A rule tree such as {"all": [{"tag": "vip"}, {"opened": {"within_days": 30}}]}'
        " (see core/audience/segments.py for the language)",
        json_schema_extra={
            "examples": [{"all": [{"field": "role", "op": "eq", "value": "Designer"}]}]
        },
    ),
]


def _named(value: str) -> str:
    if not value.strip():
        raise problem("name", "is required")
    return value.strip()


Name = Annotated[Annotated[str, Text(200)], AfterValidator(_named)]


class SegmentIn(Input):
    """A named rule tree."""

    name: Name
    description: Annotated[str, Text(2000)] = ""
    rules: Rules


class SegmentChange(Input):
    """A new name, description or rule tree for a segment; what is left out stays."""

    name: Name | None = None
    description: Annotated[str, Text(2000)] | None = None
    rules: Rules | None = None


class RulesIn(Input):
    """Rules to count and sample without saving them."""

    rules: Rules


class MembersQuery(Input):
    """A page of members: those with an id above ``after``, at most ``limit`` of them."""

    after: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class PoolPolicyIn(Input):
    """The talent-pool health policy: when a candidate is cold, and when they are sunset."""

    cold_after_days: Annotated[int, Field(ge=7, le=365)]
    sunset_after_months: Annotated[int, Field(ge=1, le=36)]

    @classmethod
    def across(cls, data: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
        """The sunset comes after the cold period, so the re-engagement mail goes first."""
        cold, months = data.get("cold_after_days"), data.get("sunset_after_months")
        if isinstance(cold, int) and isinstance(months, int) and months * 30 <= cold:
            return [
                (
                    ("sunset_after_months",),
                    "must be longer than the cold period, so that cold candidates get the "
                    "re-engagement mail before they are sunset",
                )
            ]
        return []


class PoolQuery(Input):
    """How many days of daily snapshots to show."""

    days: Annotated[int, Field(ge=1, le=730)] = 90
