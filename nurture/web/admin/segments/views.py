"""Admin pages: the segment list and the segment builder (structured rows or JSON, live count)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from nurture import runtime
from nurture.core.audience import search
from nurture.core.audience import segments as segment_service
from nurture.core.audience import stages as stage_service
from nurture.core.audience.engagement import score_of
from nurture.core.campaigns.openings import FAMILY_WORDS
from nurture.core.errors import NotFound, ValidationError
from nurture.extensions import db
from nurture.models import Candidate, Opening, Role, Segment, Tag
from nurture.models.candidates import candidate_tags
from nurture.web.admin.access import role_required
from nurture.web.security import MAX_ID

bp = Blueprint("segments", __name__, template_folder="templates")

SAMPLE = 10
MAX_ROWS = 50

# The rows the structured form offers: kind → (label, what the value means).
ROW_KINDS = {
    "field": ("Candidate field", "value"),
    "tag": ("Has the tag", "tag"),
    "skills": ("Has any of the skills", "skills, comma-separated"),
    "attribute": ("Custom attribute", "value"),
    "opened": ("Opened a mail in the last", "number of days"),
    "clicked": ("Clicked a link in the last", "number of days"),
    "not_opened": ("Opened nothing in the last", "number of days"),
    "replied": ("Replied in the last", "number of days"),
    "score": ("Engagement score at least", "e.g. 2.5"),
    "created": ("Added in the last", "number of days"),
    "rated": ("Rated the interview at most", "1 to 5"),
}
# The unit shown after a row's value, so "30" reads "30 days".
UNITS = {
    "opened": "days", "clicked": "days", "not_opened": "days", "replied": "days",
    "created": "days", "score": "points", "rated": "stars",
}  # fmt: skip
# Fields whose values the builder suggests (the ones that exist, most common first).
PICKED = {
    "stage": Candidate.stage, "role": Candidate.role, "location": Candidate.location,
    "rejection_reason": Candidate.rejection_reason, "source": Candidate.source,
    "timezone": Candidate.timezone, "email": Candidate.email,
}  # fmt: skip
FIELD_LABELS = {
    "role": "Role applied for", "stage": "Stage reached", "rejection_reason": "Rejection reason",
    "location": "Location", "source": "Source", "status": "Status", "timezone": "Time zone",
    "first_name": "First name", "last_name": "Last name", "email_domain": "Email domain",
}  # fmt: skip
OP_LABELS = {
    "eq": "is", "neq": "is not", "in": "is one of (comma-separated)", "contains": "contains",
    "starts_with": "starts with", "empty": "is empty", "not_empty": "is not empty",
}  # fmt: skip
_ROW_PATH = re.compile(r"^rules\.(?:all|any)\[(\d+)\]")
_DAYS = {"opened": "within_days", "clicked": "within_days", "replied": "within_days",
         "not_opened": "days"}  # fmt: skip


@dataclass
class Row:
    """One condition of the structured form."""

    kind: str = "field"
    name: str = "role"
    op: str = "eq"
    value: str = ""
    error: str = ""


@dataclass
class Builder:
    """What the builder page shows: the rows or the JSON, and what is wrong with them."""

    name: str = ""
    match: str = "all"
    mode: str = "simple"
    rows: list[Row] = field(default_factory=list)
    json_text: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)


def _number(text: str) -> Any:
    """An int or float when the text is one, else the text (validation names the problem)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def row_rule(row: Row) -> dict[str, Any]:
    """The JSON rule a structured row stands for."""
    if row.kind in ("field", "attribute"):
        rule: dict[str, Any] = {row.kind: row.name.strip(), "op": row.op}
        if row.op == "in":
            rule["value"] = _split(row.value)
        elif row.op not in ("empty", "not_empty"):
            rule["value"] = row.value
        return rule
    if row.kind == "tag":
        return {"tag": row.value}
    if row.kind == "skills":
        return {"skills": {"any": _split(row.value)}}
    if row.kind in _DAYS:
        return {row.kind: {_DAYS[row.kind]: _number(row.value)}}
    if row.kind == "score":
        return {"engagement_score": {"gte": _number(row.value)}}
    if row.kind == "created":
        return {"field": "created_at", "op": "within_days", "value": _number(row.value)}
    return {"rated": {"lte": _number(row.value)}}


def rule_row(rule: dict[str, Any]) -> Row | None:
    """The structured row of a rule, or None when only JSON can show it."""
    if "field" in rule and rule["field"] in segment_service.FIELDS:
        value = rule.get("value", "")
        text = ", ".join(value) if isinstance(value, list) else str(value)
        return Row("field", rule["field"], rule["op"], text)
    if rule.get("field") == "created_at" and rule.get("op") == "within_days":
        return Row("created", value=str(rule["value"]))
    if "attribute" in rule:
        value = rule.get("value", "")
        text = ", ".join(value) if isinstance(value, list) else str(value)
        return Row("attribute", rule["attribute"], rule["op"], text)
    if "tag" in rule:
        return Row("tag", value=rule["tag"])
    if "skills" in rule and "any" in rule["skills"]:
        return Row("skills", value=", ".join(rule["skills"]["any"]))
    for kind, key in _DAYS.items():
        if kind in rule and set(rule[kind]) == {key}:
            return Row(kind, value=str(rule[kind][key]))
    if "engagement_score" in rule and set(rule["engagement_score"]) == {"gte"}:
        return Row("score", value=f"{rule['engagement_score']['gte']:g}")
    if "rated" in rule and set(rule["rated"]) == {"lte"}:
        return Row("rated", value=f"{rule['rated']['lte']:g}")
    return None


def rows_of(rules: dict[str, Any]) -> tuple[str, list[Row]] | None:
    """The match (all/any) and rows of a flat rule tree, or None when it nests deeper."""
    match = "all" if "all" in rules else "any" if "any" in rules else None
    if match is None:
        return None
    rows = [rule_row(child) if isinstance(child, dict) else None for child in rules[match]]
    if any(row is None for row in rows):
        return None
    return match, [row for row in rows if row is not None]


def _from_form(form: Any) -> Builder:
    builder = Builder(
        name=form.get("name", ""),
        match="any" if form.get("match") == "any" else "all",
        mode="json" if form.get("mode") == "json" else "simple",
        json_text=form.get("rules_json", ""),
    )
    indexes = sorted({int(k.split("-")[1]) for k in form if re.fullmatch(r"c-\d+-kind", k)})
    for i in indexes[:MAX_ROWS]:
        kind = form.get(f"c-{i}-kind", "field")
        builder.rows.append(
            Row(
                kind=kind if kind in ROW_KINDS else "field",
                name=form.get(f"c-{i}-attribute" if kind == "attribute" else f"c-{i}-field", ""),
                op=form.get(f"c-{i}-op", "eq"),
                value=form.get(f"c-{i}-value", ""),
            )
        )
    return builder


def _rules(builder: Builder) -> Any:
    """The rule tree the page holds; JSON that does not parse is a ValidationError."""
    if builder.mode == "json":
        try:
            return json.loads(builder.json_text or "{}")
        except ValueError as exc:
            problem = f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            raise ValidationError(f"rules: {problem}", {"rules": problem}) from None
    return {builder.match: [row_rule(row) for row in builder.rows]}


def _place_errors(builder: Builder, fields: dict[str, str]) -> None:
    """Put each problem next to the row (or field) it is about."""
    for path, message in fields.items():
        found = _ROW_PATH.match(path)
        if path == "name":
            builder.errors["name"] = message
        elif builder.mode == "simple" and found and int(found[1]) < len(builder.rows):
            row = builder.rows[int(found[1])]
            row.error = message if not row.error else f"{row.error}; {message}"
        elif builder.mode == "simple" and path == "rules.any":
            builder.general.append("Add at least one condition, or match all of them.")
        else:
            builder.general.append(f"{path}: {message}")


def _builder_for(segment: Segment | None) -> Builder:
    if segment is None:
        return Builder()
    flat = rows_of(segment.rules)
    text = json.dumps(segment.rules, indent=2)
    if flat is None:
        return Builder(name=segment.name, mode="json", json_text=text)
    match, rows = flat
    return Builder(name=segment.name, match=match, rows=rows, json_text=text)


def _page(builder: Builder, segment: Segment | None, status: int = 200):
    preview = None
    if not builder.general and not any(r.error for r in builder.rows):
        try:
            preview = segment_service.preview(db.session, _rules(builder), runtime.now(), n=SAMPLE)
        except ValidationError as exc:
            _place_errors(builder, exc.fields)
    zero = []
    if preview is not None and preview.count == 0:
        zero = segment_service.explain_zero(db.session, _rules(builder), runtime.now())
    return render_template(
        "admin/segments/builder.html",
        builder=builder,
        segment=segment,
        preview=preview,
        zero=zero,
        row_kinds=ROW_KINDS,
        units=UNITS,
        fields=FIELD_LABELS,
        ops=OP_LABELS,
        can_json_to_simple=_can_go_simple(builder),
        campaigns=[c for c in search.active_campaigns(db.session) if c.kind == "drip"],
        tags=db.session.scalars(select(Tag.name).order_by(Tag.name).limit(500)).all(),
    ), status


def _can_go_simple(builder: Builder) -> bool:
    if builder.mode != "json":
        return False
    try:
        rules = json.loads(builder.json_text or "{}")
    except ValueError:
        return False
    return isinstance(rules, dict) and rows_of(rules) is not None


def _segment_or_404(segment_id: int) -> Segment:
    try:
        return segment_service.get_segment(db.session, segment_id)
    except NotFound:
        abort(404)


@bp.get("")
@role_required(Role.VIEWER)
def segments():
    """Every saved segment: its rules in words, and how many match now."""
    now = runtime.now()
    items = []
    for segment in segment_service.list_segments(db.session):
        try:
            count = segment_service.count(db.session, segment.rules, now)
        except ValidationError:
            count = None  # rules written before a check that now refuses them
        items.append((segment, segment_service.describe(segment.rules), count))
    return render_template("admin/segments/list.html", items=items)


@bp.get("/values")
@role_required(Role.VIEWER)
def segment_values():
    """The values a field has (tags, skills, stages, roles…) with how many candidates carry
    each, most common first, for the builder's pickers."""
    field = request.args.get("field", "")
    query = (request.args.get("q") or "").strip().lower()[:100]
    found: list[tuple[str, int]] = []
    if field == "tag":
        rows = db.session.execute(
            select(Tag.name, func.count(candidate_tags.c.candidate_id))
            .outerjoin(candidate_tags, candidate_tags.c.tag_id == Tag.id)
            .where(Tag.name.contains(query, autoescape=True))
            .group_by(Tag.name)
            .order_by(func.count(candidate_tags.c.candidate_id).desc(), Tag.name)
            .limit(20)
        )
        found = [(name, n) for name, n in rows]
    elif field == "skill":
        found = search.skill_counts(db.session, query, 20)
    elif field == "role_family":
        families = db.session.execute(
            select(Opening.role_family, func.count())
            .where(Opening.role_family != "")
            .group_by(Opening.role_family)
        ).all()
        known = dict(families)
        for family in FAMILY_WORDS:
            known.setdefault(family, 0)
        found = sorted(
            ((f, n) for f, n in known.items() if query in f.lower()), key=lambda i: (-i[1], i[0])
        )[:20]
    elif field == "stage":
        rows = stage_service.list_stages(db.session)
        found = [(r.name, r.candidates) for r in rows if query in r.name.lower()]
    elif field in PICKED:
        column = PICKED[field]
        rows = db.session.execute(
            select(column, func.count())
            .where(column != "", func.lower(column).contains(query, autoescape=True))
            .group_by(column)
            .order_by(func.count().desc(), column)
            .limit(20)
        )
        found = [(value, n) for value, n in rows]
    return jsonify([{"value": value, "count": n} for value, n in found])


@bp.get("/stages")
@role_required(Role.VIEWER)
def stages():
    """The stages as a managed list: one spelling each, in pipeline order."""
    return render_template(
        "admin/segments/stages.html", stages=stage_service.list_stages(db.session)
    )


@bp.post("/stages")
@role_required(Role.EDITOR)
def stages_change():
    """Rename (or merge) a stage, or move it up or down the pipeline."""
    stage_id = request.form.get("stage_id", "")
    # Bounded: a 30-digit id is no stage, not an integer the database overflows on.
    if not stage_id.isdigit() or int(stage_id[:12]) > MAX_ID:
        abort(400)
    try:
        if request.form.get("action") in ("up", "down"):
            offset = -1 if request.form["action"] == "up" else 1
            stage_service.move(db.session, int(stage_id), offset)
            message = "Order saved."
        else:
            name, moved = stage_service.rename(
                db.session, int(stage_id), request.form.get("name", "")
            )
            message = f"Renamed to “{name}”: {moved} candidate{'s' if moved != 1 else ''} moved."
    except NotFound:
        abort(404)
    except ValidationError as exc:
        db.session.rollback()
        flash("Not renamed: " + "; ".join(exc.fields.values()) + ".", "error")
        return redirect(url_for("admin.segments.stages"))
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("admin.segments.stages"))


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.VIEWER)
def new_segment():
    """The builder for a new segment."""
    return _build(None)


@bp.route("/<int:segment_id>", methods=["GET", "POST"])
@role_required(Role.VIEWER)
def segment(segment_id: int):
    """The builder for a saved segment."""
    return _build(_segment_or_404(segment_id))


def _build(segment: Segment | None):
    if request.method == "GET":
        return _page(_builder_for(segment), segment)
    builder = _from_form(request.form)
    action = request.form.get("action", "preview")
    if action == "add" and len(builder.rows) < MAX_ROWS:
        builder.rows.append(Row())
    elif action.startswith("remove:"):
        index = int(action.split(":", 1)[1]) if action.split(":", 1)[1].isdigit() else -1
        if 0 <= index < len(builder.rows):
            del builder.rows[index]
    elif action == "to_json":
        builder.json_text = json.dumps(_rules(builder), indent=2)
        builder.mode = "json"
    elif action == "to_simple" and _can_go_simple(builder):
        match, rows = rows_of(json.loads(builder.json_text))  # type: ignore[misc]
        builder.match, builder.rows, builder.mode = match, rows, "simple"
    elif action == "save":
        if not current_user.has_role(Role.EDITOR):
            abort(403)
        try:
            saved = segment_service.save_segment(
                db.session, builder.name, _rules(builder), runtime.now(), segment=segment
            )
        except ValidationError as exc:
            db.session.rollback()
            _place_errors(builder, exc.fields)
            return _page(builder, segment, 422)
        db.session.commit()
        flash(f"Segment “{saved.name}” saved.", "success")
        return redirect(url_for("admin.segments.segment", segment_id=saved.id))
    if builder.mode == "simple":
        builder.json_text = json.dumps(_rules(builder), indent=2)
    return _page(builder, segment)


@bp.post("/preview")
@role_required(Role.VIEWER)
def segment_preview():
    """The live count and sample for the builder's form, as JSON (errors by row)."""
    builder, now = _from_form(request.form), runtime.now()
    try:
        rules = _rules(builder)
        result = segment_service.preview(db.session, rules, now, n=SAMPLE)
    except ValidationError as exc:
        _place_errors(builder, exc.fields)
        return jsonify(
            {
                "count": None,
                "rows": {str(i): r.error for i, r in enumerate(builder.rows) if r.error},
                "general": builder.general,
            }
        )
    return jsonify(
        {
            "count": result.count,
            "rows": {},
            "general": [],
            "zero": segment_service.explain_zero(db.session, rules, now)
            if not result.count
            else [],
            "rules": rules,
            "sample": [
                {
                    "id": c.id,
                    "name": c.full_name or "—",
                    "email": c.email,
                    "role": c.role,
                    "stage": c.stage,
                    "status": c.status,
                    "score": f"{score_of(c, now):g}",
                    "url": url_for("admin.candidates.candidate", candidate_id=c.id),
                }
                for c in result.sample
            ],
        }
    )
