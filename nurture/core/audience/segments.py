"""Segments: a JSON rule language over candidates and their engagement, compiled to one SQL query.

The language (every rule is a JSON object; ``all``/``any``/``not`` nest):

    {"all": [rule, ...]}   {"any": [rule, ...]}   {"not": rule}
    {"field": F, "op": OP, "value": V}   F: role, stage, rejection_reason, location, source,
        status, timezone, first_name, last_name, email_domain; OP: eq, neq, in (a list),
        contains, starts_with, empty, not_empty; text compares ignoring case (status exactly)
    {"field": "created_at" | "consent_at", "op": "before" | "after", "value": "2026-03-01"}
    {"field": "created_at" | "consent_at", "op": "within_days" | "older_than_days", "value": 30}
    {"attribute": "seniority", "op": OP, "value": V}   custom attributes, "a.b" for nested keys,
        compared as text; a missing key is ""
    {"skills": {"any" | "all": [...]}}   {"tags": {"any" | "all": [...]}}   {"tag": "vip"}
    {"opened" | "clicked": {"within_days": 30, "campaign_id": 3 | "step_id": 7}}   (all optional)
    {"not_opened" | "not_clicked": {"days": 60, ...}}   nothing in N days, including never
    {"replied": {"within_days": 30}}
    {"engagement_score": {"gte" | "gt" | "lte" | "lt" | "eq": 2.5, ...}}
    {"rated": {"lte": 2, "campaign_id": 3}}   a candidate-experience rating (1-5) in range

``validate`` checks a tree and raises ``ValidationError`` whose ``fields`` name the bad part by
path (``rules.all[2].op``); ``compile_rules`` turns a valid tree into a boolean SQL expression
over ``Candidate``, so counting, sampling and paging are single statements on SQLite and
PostgreSQL alike, and the expression can be part of any other query (entries, broadcasts).

Engagement leaves read the per-candidate summary columns (``last_opened_at``, ``last_clicked_at``,
``last_replied_at``, ``engagement_points``) when they answer the question (any campaign, human
events only) and fall back to an EXISTS over events otherwise. Machine events (privacy proxies,
link scanners) count only where a leaf says ``"include_machine": true``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from nurture.core.audience.engagement import growth
from nurture.core.errors import NotFound, ValidationError
from nurture.models import Candidate, Event, EventKind, Message, Segment, Tag
from nurture.models.base import MAX_ID
from nurture.models.candidates import candidate_tags

MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_LIST = 500
MAX_TEXT = 400
MAX_DAYS = 36500

FIELDS = (
    "role", "stage", "rejection_reason", "location", "source", "status", "timezone",
    "first_name", "last_name", "email_domain",
)  # fmt: skip
# Fields whose values nurture writes itself, compared exactly (an index on the column serves them).
EXACT = ("status",)
FIELD_OPS = ("eq", "neq", "in", "contains", "starts_with", "empty", "not_empty")
DATE_FIELDS = ("created_at", "consent_at")
DATE_OPS = ("before", "after", "within_days", "older_than_days")
NUMBER_OPS = ("gte", "gt", "lte", "lt", "eq")
ENGAGEMENT = ("opened", "clicked", "not_opened", "not_clicked", "replied")
RULE_KINDS = (
    "all", "any", "not", "field", "skills", "tag", "tags", "attribute", *ENGAGEMENT,
    "engagement_score", "rated",
)  # fmt: skip


def _fail(path: str, message: str) -> ValidationError:
    return ValidationError(f"{path}: {message}", {path: message})


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(values)


# ---------------------------------------------------------------------------------------------
# Validation: returns a normalised copy (strings stripped, skills/tags lower-cased).


def validate(rules: Any, path: str = "rules") -> dict[str, Any]:
    """A normalised copy of a rule tree, or ValidationError naming the bad part by path."""
    counter = [0]
    return _validate(rules, path, 0, counter)


def _validate(rule: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    if not isinstance(rule, dict):
        raise _fail(path, 'must be a JSON object such as {"all": [...]}')
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested too deeply (at most {MAX_DEPTH} levels)")
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise _fail(path, f"too many conditions (at most {MAX_CONDITIONS})")
    kinds = [key for key in rule if key in RULE_KINDS]
    if len(kinds) != 1:
        if not kinds:
            unknown = ", ".join(repr(k) for k in rule) or "nothing"
            raise _fail(path, f"unknown rule {unknown}; use one of {_one_of(RULE_KINDS)}")
        raise _fail(path, f"say one of {', '.join(kinds)} per rule, not several")
    kind = kinds[0]
    if kind in ("all", "any"):
        _only(rule, path, (kind,))
        children = rule[kind]
        if not isinstance(children, list):
            raise _fail(f"{path}.{kind}", "must be a list of rules")
        if kind == "any" and not children:
            raise _fail(f"{path}.{kind}", "needs at least one rule")
        return {
            kind: [
                _validate(child, f"{path}.{kind}[{i}]", depth + 1, counter)
                for i, child in enumerate(children)
            ]
        }
    if kind == "not":
        _only(rule, path, ("not",))
        return {"not": _validate(rule["not"], f"{path}.not", depth + 1, counter)}
    leaf: dict[str, Any] = _LEAVES[kind](rule, path)
    return leaf


def _only(rule: dict[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in rule:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"unknown key; this rule takes {_one_of(allowed)}")


def _text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(path, "must be a string")
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise _fail(path, f"at most {MAX_TEXT} characters")
    return text


def _texts(value: Any, path: str, lower: bool = False) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "must be a non-empty list of strings")
    if len(value) > MAX_LIST:
        raise _fail(path, f"at most {MAX_LIST} values")
    out = [_text(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return [v.lower() for v in out] if lower else out


def _days(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DAYS:
        raise _fail(path, f"must be a whole number of days from 1 to {MAX_DAYS}")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, "must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise _fail(path, "must be a finite number")
    return number


def _id(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise _fail(path, "must be a positive whole number (an id)")
    return value


def _leaf_field(rule: dict[str, Any], path: str) -> dict[str, Any]:
    """``{"field": "role", "op": "eq", "value": "Backend engineer"}``; dates too."""
    _only(rule, path, ("field", "op", "value"))
    field = rule["field"]
    if field in DATE_FIELDS:
        return _leaf_date(rule, path)
    if field not in FIELDS:
        raise _fail(
            f"{path}.field",
            f"unknown field {field!r}; use one of {_one_of(FIELDS + DATE_FIELDS)}",
        )
    return {"field": field, **_string_op(rule, path)}


def _string_op(rule: dict[str, Any], path: str) -> dict[str, Any]:
    op = rule.get("op")
    if op not in FIELD_OPS:
        raise _fail(f"{path}.op", f"unknown operator {op!r}; use one of {_one_of(FIELD_OPS)}")
    if op in ("empty", "not_empty"):
        return {"op": op}
    if "value" not in rule:
        raise _fail(f"{path}.value", f"is required for {op}")
    if op == "in":
        return {"op": op, "value": _texts(rule["value"], f"{path}.value")}
    value = _text(rule["value"], f"{path}.value")
    if op in ("contains", "starts_with") and not value:
        raise _fail(f"{path}.value", f"must not be empty for {op}")
    return {"op": op, "value": value}


def _leaf_date(rule: dict[str, Any], path: str) -> dict[str, Any]:
    op = rule.get("op")
    if op not in DATE_OPS:
        raise _fail(f"{path}.op", f"unknown operator {op!r}; use one of {_one_of(DATE_OPS)}")
    value = rule.get("value")
    if op in ("within_days", "older_than_days"):
        return {"field": rule["field"], "op": op, "value": _days(value, f"{path}.value")}
    return {"field": rule["field"], "op": op, "value": _when(value, f"{path}.value").isoformat()}


def _when(value: Any, path: str) -> datetime:
    problem = "must be a date (2026-03-01) or an ISO-8601 time (2026-03-01T09:00:00Z)"
    if not isinstance(value, str):
        raise _fail(path, problem)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(path, problem) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


Leaf = Callable[[dict[str, Any], str], dict[str, Any]]


def _leaf_set(key: str, lower: bool) -> Leaf:
    def leaf(rule: dict[str, Any], path: str) -> dict[str, Any]:
        _only(rule, path, (key,))
        spec = rule[key]
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("any", "all"):
            raise _fail(f"{path}.{key}", 'must be {"any": [...]} or {"all": [...]}')
        mode = next(iter(spec))
        return {key: {mode: _texts(spec[mode], f"{path}.{key}.{mode}", lower=lower)}}

    return leaf


def _leaf_tag(rule: dict[str, Any], path: str) -> dict[str, Any]:
    _only(rule, path, ("tag",))
    tag = _text(rule["tag"], f"{path}.tag").lower()
    if not tag:
        raise _fail(f"{path}.tag", "must not be empty")
    return {"tag": tag}


def _leaf_attribute(rule: dict[str, Any], path: str) -> dict[str, Any]:
    """``{"attribute": "seniority", "op": "eq", "value": "senior"}``; a.b for nested keys."""
    _only(rule, path, ("attribute", "op", "value"))
    name = _text(rule["attribute"], f"{path}.attribute")
    keys = name.split(".")
    if not all(k.replace("_", "").replace("-", "").isalnum() for k in keys):
        raise _fail(
            f"{path}.attribute",
            "must be a key of letters, digits, - and _ (a.b for a nested key)",
        )
    return {"attribute": name, **_string_op(rule, path)}


def _leaf_engagement(kind: str) -> Leaf:
    def leaf(rule: dict[str, Any], path: str) -> dict[str, Any]:
        _only(rule, path, (kind,))
        spec = rule[kind]
        where = f"{path}.{kind}"
        if spec is True:
            spec = {}
        if not isinstance(spec, dict):
            raise _fail(where, 'must be an object such as {"within_days": 30}')
        window = "days" if kind.startswith("not_") else "within_days"
        allowed: tuple[str, ...] = (window, "campaign_id", "step_id", "include_machine")
        if kind == "replied":
            allowed = (window,)
        out: dict[str, Any] = {}
        for key, value in spec.items():
            if key not in allowed:
                raise _fail(f"{where}.{key}", f"unknown key; use one of {_one_of(allowed)}")
            if key == window:
                out[key] = _days(value, f"{where}.{key}")
            elif key == "include_machine":
                if not isinstance(value, bool):
                    raise _fail(f"{where}.{key}", "must be true or false")
                out[key] = value
            else:
                out[key] = _id(value, f"{where}.{key}")
        if kind.startswith("not_") and window not in out:
            raise _fail(f"{where}.{window}", "is required (no open in how many days?)")
        return {kind: out}

    return leaf


def _comparison(
    spec: Any, where: str, low: float | None = None, high: float | None = None
) -> dict[str, float]:
    if not isinstance(spec, dict) or not spec:
        raise _fail(where, 'must be an object such as {"gte": 2.5}')
    out: dict[str, float] = {}
    for op, value in spec.items():
        if op not in NUMBER_OPS:
            problem = f"unknown operator {op!r}; use one of {_one_of(NUMBER_OPS)}"
            raise _fail(f"{where}.{op}", problem)
        out[op] = _number(value, f"{where}.{op}")
        if low is not None and high is not None and not low <= out[op] <= high:
            raise _fail(f"{where}.{op}", f"must be from {low:g} to {high:g}")
    return out


def _leaf_score(rule: dict[str, Any], path: str) -> dict[str, Any]:
    _only(rule, path, ("engagement_score",))
    return {"engagement_score": _comparison(rule["engagement_score"], f"{path}.engagement_score")}


def _leaf_rated(rule: dict[str, Any], path: str) -> dict[str, Any]:
    """``{"rated": {"lte": 2}}``: gave a candidate-experience rating (1-5) in that range."""
    _only(rule, path, ("rated",))
    spec = rule["rated"]
    where = f"{path}.rated"
    if isinstance(spec, dict) and "campaign_id" in spec:
        campaign = _id(spec["campaign_id"], f"{where}.campaign_id")
        out = _comparison({k: v for k, v in spec.items() if k != "campaign_id"}, where, 1, 5)
        return {"rated": {**out, "campaign_id": campaign}}
    return {"rated": _comparison(spec, where, 1, 5)}


_LEAVES = {
    "field": _leaf_field,
    "skills": _leaf_set("skills", lower=True),
    "tags": _leaf_set("tags", lower=True),
    "tag": _leaf_tag,
    "attribute": _leaf_attribute,
    "engagement_score": _leaf_score,
    "rated": _leaf_rated,
    **{kind: _leaf_engagement(kind) for kind in ENGAGEMENT},
}


# ---------------------------------------------------------------------------------------------
# Compilation.


class _like_ci(FunctionElement[bool]):  # noqa: N801 - used like a SQL function
    """``column LIKE pattern`` ignoring (ASCII) case: ILIKE on PostgreSQL."""

    type = Boolean()
    inherit_cache = True
    name = "like_ci"


@compiles(_like_ci)
def _like_ci_default(element: _like_ci, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} ILIKE {pattern} ESCAPE '\\')"


@compiles(_like_ci, "sqlite")
def _like_ci_sqlite(element: _like_ci, compiler: Any, **kw: Any) -> str:
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} LIKE {pattern} ESCAPE '\\')"


class _json_has(FunctionElement[bool]):  # noqa: N801
    """A JSON array column holds any (``mode="any"``) or all of the given strings."""

    type = Boolean()
    inherit_cache = False
    name = "json_has"

    def __init__(self, column: Any, values: list[str], mode: str) -> None:
        self.mode = mode
        self.count = len(values)
        super().__init__(column, *values)


@compiles(_json_has)
def _json_has_postgresql(element: _json_has, compiler: Any, **kw: Any) -> str:
    # JSONB containment operators; a GIN index on the column answers them.
    column, *values = (compiler.process(c, **kw) for c in element.clauses)
    operator = "?|" if element.mode == "any" else "?&"
    return f"({column} {operator} ARRAY[{', '.join(values)}]::text[])"


@compiles(_json_has, "sqlite")
def _json_has_sqlite(element: _json_has, compiler: Any, **kw: Any) -> str:
    column, *values = (compiler.process(c, **kw) for c in element.clauses)
    found = f"FROM json_each({column}) WHERE json_each.value IN ({', '.join(values)})"
    if element.mode == "any":
        return f"EXISTS (SELECT 1 {found})"
    return f"((SELECT count(DISTINCT json_each.value) {found}) = {element.count})"


def _pattern(value: str, start: bool) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%" if start else f"%{escaped}%"


def _string_condition(column: Any, op: str, value: Any, exact: bool = False) -> ColumnElement[bool]:
    # Recruiters type "Onsite" for "onsite": text compares ignoring case (lower() indexes serve
    # it); ``exact`` for the fields whose values nurture itself writes (status).
    if not exact:
        column = func.lower(column)
        value = [v.lower() for v in value] if isinstance(value, list) else str(value).lower()
    found: ColumnElement[bool]
    if op == "eq":
        found = column == value
    elif op == "neq":
        found = column != value
    elif op == "in":
        found = column.in_(value)
    elif op == "contains":
        found = _like_ci(column, _pattern(value, start=False))
    elif op == "starts_with":
        found = _like_ci(column, _pattern(value, start=True))
    elif op == "empty":
        found = column == ""
    else:
        found = column != ""
    return found


def _email_domain(op: str, value: Any) -> ColumnElement[bool]:
    # Addresses are stored lower-cased with one @: the domain is what follows it, so LIKE on
    # the whole address answers every operator without a per-dialect substring function.
    email = Candidate.email

    def ends(domain: str) -> ColumnElement[bool]:
        return _like_ci(email, "%@" + _pattern(domain, start=True)[:-1])

    if op == "eq":
        return ends(value)
    if op == "neq":
        return not_(ends(value))
    if op == "in":
        return or_(*(ends(v) for v in value))
    if op == "contains":
        return _like_ci(email, "%@" + _pattern(value, start=False))
    if op == "starts_with":
        return _like_ci(email, "%@" + _pattern(value, start=True))
    at_least_one = _like_ci(email, "%@_%")
    return not_(at_least_one) if op == "empty" else at_least_one


def _number_condition(column: Any, spec: dict[str, float]) -> ColumnElement[bool]:
    parts = []
    for op, value in spec.items():
        if op == "gte":
            parts.append(column >= value)
        elif op == "gt":
            parts.append(column > value)
        elif op == "lte":
            parts.append(column <= value)
        elif op == "lt":
            parts.append(column < value)
        elif op == "eq":
            parts.append(column == value)
    return and_(*parts)


def _has_tags(names: list[str], mode: str, tag_ids: dict[str, int] | None) -> ColumnElement[bool]:
    def tagged(condition: Any) -> ColumnElement[bool]:
        return exists().where(candidate_tags.c.candidate_id == Candidate.id, condition)

    names = list(dict.fromkeys(names))
    if tag_ids is not None:
        # Tag ids known in advance: the planner then sees how common each tag is (a tag on a
        # quarter of the candidates wants a hash join, a rare one an index probe).
        ids = [tag_ids[name] for name in names if name in tag_ids]
        if mode == "any":
            return tagged(candidate_tags.c.tag_id.in_(ids)) if ids else false()
        if len(ids) < len(names):
            return false()
        return and_(*(tagged(candidate_tags.c.tag_id == i) for i in ids))
    by_name = candidate_tags.c.tag_id == Tag.id
    if mode == "any":
        return tagged(and_(by_name, Tag.name.in_(names)))
    return and_(*(tagged(and_(by_name, Tag.name == name)) for name in names))


def _tag_names(rule: dict[str, Any]) -> set[str]:
    if "all" in rule or "any" in rule:
        children = rule.get("all", rule.get("any", []))
        return set().union(*(_tag_names(child) for child in children))
    if "not" in rule:
        return _tag_names(rule["not"])
    if "tag" in rule:
        return {rule["tag"]}
    if "tags" in rule:
        return set(next(iter(rule["tags"].values())))
    return set()


_SUMMARY = {
    "opened": (EventKind.OPEN, Candidate.last_opened_at),
    "clicked": (EventKind.CLICK, Candidate.last_clicked_at),
    "not_opened": (EventKind.OPEN, Candidate.last_opened_at),
    "not_clicked": (EventKind.CLICK, Candidate.last_clicked_at),
    "replied": (EventKind.REPLY, Candidate.last_replied_at),
}


def _engaged(kind: str, spec: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    event_kind, summary = _SUMMARY[kind]
    days = spec.get("days") or spec.get("within_days")
    since = now - timedelta(days=days) if days else None
    scoped = "campaign_id" in spec or "step_id" in spec or spec.get("include_machine")
    found: ColumnElement[bool]
    if not scoped:
        # The summary column answers "any campaign, human events": no event scan.
        found = summary.is_not(None)
        if since is not None:
            found = and_(found, summary >= since)
    else:
        conditions = [Event.candidate_id == Candidate.id, Event.kind == event_kind.value]
        if not spec.get("include_machine"):
            conditions.append(Event.machine == false())
        if since is not None:
            conditions.append(Event.created_at >= since)
        if "campaign_id" in spec or "step_id" in spec:
            conditions.append(Message.id == Event.message_id)
            if "campaign_id" in spec:
                conditions.append(Message.campaign_id == spec["campaign_id"])
            if "step_id" in spec:
                conditions.append(Message.step_id == spec["step_id"])
        found = exists().where(*conditions)
    return not_(found) if kind.startswith("not_") else found


def _rated(spec: dict[str, Any]) -> ColumnElement[bool]:
    bounds = {k: v for k, v in spec.items() if k != "campaign_id"}
    # Ratings are the strings "1"-"5": listing the ones in range avoids casting text on
    # PostgreSQL, where a CAST of any other event's value would fail.
    wanted = [str(r) for r in range(1, 6) if _in_range(r, bounds)]
    conditions = [
        Event.candidate_id == Candidate.id,
        Event.kind == EventKind.RATING.value,
        Event.machine == false(),
        Event.value.in_(wanted),
    ]
    if "campaign_id" in spec:
        conditions += [Message.id == Event.message_id, Message.campaign_id == spec["campaign_id"]]
    return exists().where(*conditions) if wanted else false()


def _in_range(value: float, bounds: dict[str, float]) -> bool:
    checks = {
        "gte": value >= bounds.get("gte", value),
        "gt": "gt" not in bounds or value > bounds["gt"],
        "lte": value <= bounds.get("lte", value),
        "lt": "lt" not in bounds or value < bounds["lt"],
        "eq": "eq" not in bounds or value == bounds["eq"],
    }
    return all(checks.values())


def _attribute(name: str) -> Any:
    keys = tuple(name.split("."))
    element = Candidate.attributes[keys if len(keys) > 1 else keys[0]].as_string()
    # Values compare as text on both databases; a missing key is the empty string.
    return func.coalesce(cast(element, String), "")


def compile_rules(
    rules: dict[str, Any],
    now: datetime,
    *,
    session: Session | None = None,
    checked: bool = False,
) -> ColumnElement[bool]:
    """The SQL condition over ``Candidate`` that a (validated) rule tree stands for; with a
    session, tag names are looked up first so the database can plan for each tag's size."""
    rule = rules if checked else validate(rules)
    tag_ids = None
    if session is not None and (names := _tag_names(rule)):
        found = session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names)))
        tag_ids = {name: tag_id for name, tag_id in found}
    return _compile(rule, now, tag_ids)


def _compile(
    rule: dict[str, Any], now: datetime, tag_ids: dict[str, int] | None = None
) -> ColumnElement[bool]:
    if "all" in rule:
        parts = [_compile(child, now, tag_ids) for child in rule["all"]]
        return and_(true(), *parts) if parts else true()
    if "any" in rule:
        return or_(*(_compile(child, now, tag_ids) for child in rule["any"]))
    if "not" in rule:
        return not_(_compile(rule["not"], now, tag_ids))
    if "field" in rule:
        field, op = rule["field"], rule["op"]
        value: Any = rule.get("value")
        if field in DATE_FIELDS:
            column = getattr(Candidate, field)
            if op == "before":
                found = column < datetime.fromisoformat(value)
            elif op == "after":
                found = column > datetime.fromisoformat(value)
            elif op == "within_days":
                found = column >= now - timedelta(days=value)
            else:
                found = column < now - timedelta(days=value)
            # Never NULL, so that "not" of a missing date is true rather than unknown.
            return and_(column.is_not(None), found)
        if field == "email_domain":
            return _email_domain(op, value)
        return _string_condition(getattr(Candidate, field), op, value, exact=field in EXACT)
    if "attribute" in rule:
        return _string_condition(_attribute(rule["attribute"]), rule["op"], rule.get("value"))
    if "skills" in rule:
        mode, values = next(iter(rule["skills"].items()))
        return _json_has(Candidate.skills, values, mode)
    if "tags" in rule:
        mode, values = next(iter(rule["tags"].items()))
        return _has_tags(values, mode, tag_ids)
    if "tag" in rule:
        return _has_tags([rule["tag"]], "any", tag_ids)
    if "engagement_score" in rule:
        # The score at ``now`` is points / growth(now): compare the stored points with the bound
        # grown the same way, which the points index answers.
        grown = growth(now)
        bounds = {op: value * grown for op, value in rule["engagement_score"].items()}
        return _number_condition(Candidate.engagement_points, bounds)
    if "rated" in rule:
        return _rated(rule["rated"])
    kind = next(k for k in ENGAGEMENT if k in rule)
    return _engaged(kind, rule[kind], now)


# ---------------------------------------------------------------------------------------------
# Members, counts, samples, pages.


def members(rules: dict[str, Any], now: datetime, session: Session | None = None) -> Select[int]:
    """SELECT the ids of the candidates a rule tree matches, in id order."""
    condition = compile_rules(rules, now, session=session)
    return select(Candidate.id).where(condition).order_by(Candidate.id)


def count(session: Session, rules: dict[str, Any], now: datetime) -> int:
    """How many candidates match, in one query."""
    condition = compile_rules(rules, now, session=session)
    query = select(func.count()).select_from(Candidate).where(condition)
    return session.scalar(query) or 0


def page(
    session: Session,
    rules: dict[str, Any],
    now: datetime,
    after: int | None = None,
    limit: int = 50,
) -> list[int]:
    """Up to ``limit`` member ids greater than ``after`` (keyset paging on id)."""
    query = members(rules, now, session).limit(limit)
    if after is not None:
        query = query.where(Candidate.id > after)
    return list(session.scalars(query))


def sample(session: Session, rules: dict[str, Any], now: datetime, n: int = 20) -> list[Candidate]:
    """The ``n`` most recently added matching candidates, for a builder's preview."""
    query = (
        select(Candidate)
        .where(compile_rules(rules, now, session=session))
        .order_by(Candidate.id.desc())
        .limit(n)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class Preview:
    """A rule tree's live count and a few of its members."""

    count: int
    sample: list[Candidate]


def preview(session: Session, rules: Any, now: datetime, n: int = 10) -> Preview:
    """Validate and return the count and a sample (the builder's live preview)."""
    rule = validate(rules)
    return Preview(count=count(session, rule, now), sample=sample(session, rule, now, n))


# ---------------------------------------------------------------------------------------------
# Saved segments.


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name is required", {"name": "is required"})
    name = " ".join(name.split())
    if len(name) > 200:
        raise ValidationError("name is too long", {"name": "at most 200 characters"})
    return str(name)


def save_segment(
    session: Session,
    name: Any,
    rules: Any,
    now: datetime,
    segment: Segment | None = None,
    description: str = "",
) -> Segment:
    """Create (or update) a named segment after validating its rules; the name is unique."""
    errors: dict[str, str] = {}
    clean_name = ""
    clean_rules: dict[str, Any] = {}
    try:
        clean_name = _clean_name(name)
    except ValidationError as exc:
        errors.update(exc.fields)
    try:
        clean_rules = validate(rules)
    except ValidationError as exc:
        errors.update(exc.fields)
    if clean_name and "name" not in errors:
        taken = session.scalar(select(Segment.id).where(Segment.name == clean_name))
        if taken is not None and (segment is None or taken != segment.id):
            errors["name"] = f"a segment called {clean_name!r} already exists"
    if errors:
        first = next(iter(errors.items()))
        raise ValidationError(f"{first[0]}: {first[1]}", errors)
    if segment is None:
        segment = Segment(name=clean_name, rules=clean_rules, created_at=now, updated_at=now)
        session.add(segment)
    else:
        segment.name, segment.rules, segment.updated_at = clean_name, clean_rules, now
    segment.description = (description or "").strip()
    session.flush()
    return segment


def get_segment(session: Session, segment_id: int) -> Segment:
    """The segment with that id, or NotFound."""
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment


def list_segments(session: Session) -> list[Segment]:
    """Every saved segment by name (there are tens, not thousands)."""
    return list(session.scalars(select(Segment).order_by(Segment.name)))


FIELD_WORDS = {
    "role": "role", "stage": "stage", "rejection_reason": "rejection reason",
    "location": "location", "source": "source", "status": "status", "timezone": "time zone",
    "first_name": "first name", "last_name": "last name", "email_domain": "email domain",
    "created_at": "added", "consent_at": "consent given",
}  # fmt: skip
OP_WORDS = {
    "eq": "is", "neq": "is not", "in": "is one of", "contains": "contains",
    "starts_with": "starts with", "empty": "is empty", "not_empty": "is not empty",
}  # fmt: skip


def _quoted(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(f"“{v}”" for v in value)
    return f"“{value}”"


def _scope(spec: dict[str, Any]) -> str:
    where = ""
    if "campaign_id" in spec:
        where += f" of campaign #{spec['campaign_id']}"
    if "step_id" in spec:
        where += f" (step #{spec['step_id']})"
    return where


def _bounds(spec: dict[str, Any], unit: str = "") -> str:
    words = {"gte": "at least", "gt": "above", "lte": "at most", "lt": "below", "eq": "exactly"}
    return " and ".join(f"{words[op]} {value:g}{unit}" for op, value in spec.items() if op in words)


def describe(rule: dict[str, Any]) -> str:
    """A rule tree as a recruiter reads it: ``stage is “onsite” and opened a mail in the last
    30 days``."""
    if "all" in rule:
        parts = [describe(r) for r in rule["all"]]
        return " and ".join(f"({p})" if " or " in p else p for p in parts) or "everyone"
    if "any" in rule:
        return " or ".join(describe(r) for r in rule["any"])
    if "not" in rule:
        return f"not ({describe(rule['not'])})"
    if rule.get("field") in DATE_FIELDS:
        name, op, value = FIELD_WORDS[rule["field"]], rule["op"], rule["value"]
        if op == "within_days":
            return f"{name} in the last {value} days"
        if op == "older_than_days":
            return f"{name} more than {value} days ago"
        return f"{name} {op} {str(value)[:10]}"
    if "field" in rule or "attribute" in rule:
        name = FIELD_WORDS.get(rule.get("field", ""), f"attribute {rule.get('attribute')}")
        op = OP_WORDS.get(rule["op"], rule["op"])
        return f"{name} {op}" + (f" {_quoted(rule['value'])}" if "value" in rule else "")
    if "tag" in rule:
        return f"tagged “{rule['tag']}”"
    for key, noun in (("tags", "tags"), ("skills", "skills")):
        if key in rule:
            mode, values = next(iter(rule[key].items()))
            verb = "tagged with" if key == "tags" else "has"
            return f"{verb} {mode} of the {noun} {', '.join(values)}"
    if "engagement_score" in rule:
        return f"engagement score {_bounds(rule['engagement_score'])}"
    if "rated" in rule:
        return f"rated the interview {_bounds(rule['rated'], ' stars')}" + _scope(rule["rated"])
    kind = next((k for k in ENGAGEMENT if k in rule), None)
    if kind is None:
        key = next(iter(rule))
        return f"{key.replace('_', ' ')} {rule[key]}"
    spec = rule[kind]
    what = {"opened": "opened a mail", "clicked": "clicked a link", "replied": "replied",
            "not_opened": "opened nothing", "not_clicked": "clicked nothing"}[kind]  # fmt: skip
    days = spec.get("within_days") or spec.get("days")
    return what + _scope(spec) + (f" in the last {days} days" if days else "")


def _children(rule: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    if "all" in rule:
        return "all", rule["all"]
    if "any" in rule:
        return "any", rule["any"]
    return "one", [rule]


def _close_values(session: Session, rule: dict[str, Any]) -> str:
    """For a text or tag leaf: the values that exist and look like the one asked for."""
    if (
        rule.get("field") in FIELDS
        and rule.get("op") in ("eq", "in")
        and rule["field"] not in ("email_domain",)
    ):
        column = getattr(Candidate, rule["field"])
        found = session.execute(
            select(column, func.count())
            .where(column != "")
            .group_by(column)
            .order_by(func.count().desc())
            .limit(200)
        ).all()
    elif "tag" in rule or "tags" in rule:
        found = session.execute(
            select(Tag.name, func.count())
            .join(candidate_tags, candidate_tags.c.tag_id == Tag.id)
            .group_by(Tag.name)
            .order_by(func.count().desc())
            .limit(200)
        ).all()
    else:
        return ""
    if not found:
        return ""
    wanted: Any = (
        rule.get("value") or rule.get("tag") or next(iter(rule.get("tags", {}).values()), [])
    )
    wanted = wanted if isinstance(wanted, list) else [wanted]
    counts: dict[str, int] = dict(found)
    close: list[str] = []
    for value in wanted:
        close += difflib.get_close_matches(str(value).lower(), [v.lower() for v in counts], 3, 0.5)
    by_lower = {v.lower(): v for v in counts}
    shown = [by_lower[c] for c in dict.fromkeys(close)] or list(counts)[:5]
    return "; known values: " + ", ".join(f"“{v}” ({counts[v]})" for v in shown)


def explain_zero(session: Session, rules: dict[str, Any], now: datetime) -> list[str]:
    """Why a rule tree matches nobody: the conditions that match no one on their own (with
    the values that do exist), or, when each matches someone, how many each matches."""
    rule = validate(rules)
    mode, children = _children(rule)
    if not children:
        return ["there are no candidates yet"]
    alone = [(child, count(session, child, now)) for child in children]
    empty = [(child, n) for child, n in alone if n == 0]
    if empty:
        return [
            f"nobody matches: {describe(child)}{_close_values(session, child)}"
            for child, _ in empty
        ]
    if mode == "all":
        each = "; ".join(f"{describe(child)}: {n:,}" for child, n in alone)
        return [f"each condition matches someone, but nobody matches all of them: {each}"]
    return []
