"""Segment rules: the compiled SQL agrees with a plain Python reading of the same rules, on
generated data, on SQLite and PostgreSQL; and bad rules are refused with a path to the fault."""

from __future__ import annotations

import operator
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert

from nurture.core.audience import engagement
from nurture.core.audience import segments as seg
from nurture.core.audience.engagement import growth
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Event, Message, Step, Tag
from nurture.models.candidates import candidate_tags
from nurture.runtime import FileClock
from tests.conftest import make_app

SEED = 20260302
ROLES = ["Backend engineer", "Designer", "Data scientist", "backend Lead", ""]
STAGES = ["applied", "screen", "onsite", "offer", ""]
REASONS = ["timing", "experience", "location", ""]
LOCATIONS = ["Paris", "Berlin", "Remote - EU", "paris", ""]
SOURCES = ["referral", "linkedin", "ats", ""]
STATUSES = ["active", "unsubscribed", "bounced", "hired"]
ZONES = ["Europe/Paris", "America/New_York", ""]
FIRST = ["Ana", "Bo", "Chidi", "ana", "Dee_1", ""]
LAST = ["Lopez", "Smith", "100%", "O'Neil", ""]
DOMAINS = ["example.com", "mail.example.org", "corp.io", "example.co"]
SKILLS = ["python", "go", "sql", "react", "figma", "rust"]
TAGS = ["silver-medalist", "backend", "design", "vip", "london"]
SENIORITY = ["junior", "senior", "staff"]
TEAMS = ["core", "growth"]
CAMPAIGNS = 3


@dataclass
class World:
    """The generated data as Python sees it: candidates, messages and events."""

    now: datetime
    candidates: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    campaign_ids: list[int] = field(default_factory=list)
    step_ids: list[int] = field(default_factory=list)


def build_world(rng: random.Random, now: datetime, size: int = 300) -> World:
    """Random candidates, tags, skills, attributes, messages and events (some by machines)."""
    world = World(now=now)
    session = db.session
    tag_ids = {}
    for name in TAGS:
        tag = Tag(name=name)
        session.add(tag)
        session.flush()
        tag_ids[name] = tag.id
    for c in range(CAMPAIGNS):
        campaign = Campaign(name=f"Campaign {c}", created_at=now, updated_at=now)
        session.add(campaign)
        session.flush()
        world.campaign_ids.append(campaign.id)
        for position in range(2):
            step = Step(campaign_id=campaign.id, position=position)
            session.add(step)
            session.flush()
            world.step_ids.append(step.id)
    step_campaign = {step: world.campaign_ids[i // 2] for i, step in enumerate(world.step_ids)}

    def when(days: int) -> datetime:
        return now - timedelta(seconds=rng.randrange(days * 86400))

    rows, tag_rows, message_rows, event_rows = [], [], [], []
    for i in range(1, size + 1):
        attributes: dict[str, Any] = {}
        if rng.random() < 0.7:
            attributes["seniority"] = rng.choice(SENIORITY)
        if rng.random() < 0.4:
            attributes["team"] = {"name": rng.choice(TEAMS)}
        if rng.random() < 0.3:
            attributes["years"] = rng.randrange(1, 12)
        row = {
            "id": i,
            "email": f"p{i}@{rng.choice(DOMAINS)}",
            "first_name": rng.choice(FIRST),
            "last_name": rng.choice(LAST),
            "role": rng.choice(ROLES),
            "stage": rng.choice(STAGES),
            "rejection_reason": rng.choice(REASONS),
            "location": rng.choice(LOCATIONS),
            "source": rng.choice(SOURCES),
            "status": rng.choice(STATUSES),
            "timezone": rng.choice(ZONES),
            "skills": sorted(rng.sample(SKILLS, rng.randrange(0, 4))),
            "attributes": attributes,
            "engagement_score": rng.choice([0.0, 0.5, 1.0, 2.5, 4.0, 7.5]),
            "created_at": when(400),
            "consent_at": when(400) if rng.random() < 0.6 else None,
        }
        row["updated_at"] = row["created_at"]
        tags = rng.sample(TAGS, rng.randrange(0, 3))
        row["tags"] = tags
        world.candidates.append(row)
        stored = {k: v for k, v in row.items() if k not in ("tags", "engagement_score")}
        # The score the oracle reads is the score now; the table keeps it as points.
        stored["engagement_points"] = row["engagement_score"] * growth(now)
        rows.append(stored)
        tag_rows += [{"candidate_id": i, "tag_id": tag_ids[t]} for t in tags]
        for _ in range(rng.randrange(0, 5)):
            step = rng.choice(world.step_ids)
            message_id = len(world.messages) + 1
            sent = when(200)
            world.messages[message_id] = {"campaign_id": step_campaign[step], "step_id": step}
            message_rows.append({
                "id": message_id, "candidate_id": i, "campaign_id": step_campaign[step],
                "step_id": step, "state": "sent", "queued_at": sent, "sent_at": sent,
            })  # fmt: skip
            for _ in range(rng.randrange(0, 4)):
                kind = rng.choice(["open", "open", "click", "reply", "rating", "unsubscribe"])
                event = {
                    "message_id": message_id, "candidate_id": i, "kind": kind,
                    "machine": kind in ("open", "click", "rating") and rng.random() < 0.25,
                    "value": str(rng.randrange(1, 6)) if kind == "rating" else "",
                    "created_at": sent + (now - sent) * rng.random(),
                }  # fmt: skip
                event_rows.append(event)
                world.events[i].append(event)
    session.execute(insert(Candidate), rows)
    if tag_rows:
        session.execute(insert(candidate_tags), tag_rows)
    session.execute(insert(Message), message_rows)
    session.execute(insert(Event), event_rows)
    engagement.rebuild_summary(session)
    session.commit()
    return world


# ---------------------------------------------------------------------------------------------
# The plain Python reading of a rule.


def _text_op(text: str, op: str, value: Any) -> bool:
    # Text compares ignoring case, as recruiters type it.
    if op == "eq":
        return text.lower() == value.lower()
    if op == "neq":
        return text.lower() != value.lower()
    if op == "in":
        return text.lower() in [v.lower() for v in value]
    if op == "contains":
        return value.lower() in text.lower()
    if op == "starts_with":
        return text.lower().startswith(value.lower())
    if op == "empty":
        return text == ""
    return text != ""


def _domain_op(email: str, op: str, value: Any) -> bool:
    domain = email.split("@", 1)[1].lower() if "@" in email else ""
    if op == "eq":
        return domain == value.lower()
    if op == "neq":
        return domain != value.lower()
    if op == "in":
        return domain in [v.lower() for v in value]
    return _text_op(domain, op, value)


def _attribute_text(attributes: dict[str, Any], path: str) -> str:
    value: Any = attributes
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return ""
        value = value[key]
    return str(value)


COMPARE = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt,
           "eq": operator.eq}  # fmt: skip


def _human(event: dict[str, Any], spec: dict[str, Any]) -> bool:
    return spec.get("include_machine", False) or not event["machine"]


def evaluate(rule: dict[str, Any], c: dict[str, Any], world: World) -> bool:
    """What the rule means, read directly from the generated data."""
    now = world.now
    if "all" in rule:
        return all(evaluate(r, c, world) for r in rule["all"])
    if "any" in rule:
        return any(evaluate(r, c, world) for r in rule["any"])
    if "not" in rule:
        return not evaluate(rule["not"], c, world)
    if "field" in rule:
        name, op, value = rule["field"], rule["op"], rule.get("value")
        if name in seg.DATE_FIELDS:
            when = c[name]
            if when is None:
                return False
            if op == "before":
                return when < datetime.fromisoformat(value)
            if op == "after":
                return when > datetime.fromisoformat(value)
            if op == "within_days":
                return when >= now - timedelta(days=value)
            return when < now - timedelta(days=value)
        if name == "email_domain":
            return _domain_op(c["email"], op, value)
        return _text_op(c[name], op, value)
    if "attribute" in rule:
        return _text_op(_attribute_text(c["attributes"], rule["attribute"]), rule["op"],
                        rule.get("value"))  # fmt: skip
    if "skills" in rule or "tags" in rule:
        key = "skills" if "skills" in rule else "tags"
        mode, values = next(iter(rule[key].items()))
        have = set(c[key])
        return bool(have & set(values)) if mode == "any" else set(values) <= have
    if "tag" in rule:
        return rule["tag"] in c["tags"]
    if "engagement_score" in rule:
        score = c["engagement_score"]
        return all(COMPARE[op](score, v) for op, v in rule["engagement_score"].items())
    if "rated" in rule:
        spec = rule["rated"]
        for e in world.events[c["id"]]:
            if e["kind"] != "rating" or e["machine"]:
                continue
            campaign = world.messages[e["message_id"]]["campaign_id"]
            if "campaign_id" in spec and campaign != spec["campaign_id"]:
                continue
            rating = int(e["value"])
            if all(COMPARE[op](rating, v) for op, v in spec.items() if op != "campaign_id"):
                return True
        return False
    kind = next(k for k in seg.ENGAGEMENT if k in rule)
    spec = rule[kind]
    event_kind = {"opened": "open", "not_opened": "open", "clicked": "click",
                  "not_clicked": "click", "replied": "reply"}[kind]  # fmt: skip
    days = spec.get("days") or spec.get("within_days")
    found = False
    for e in world.events[c["id"]]:
        if e["kind"] != event_kind or not _human(e, spec):
            continue
        if days and e["created_at"] < now - timedelta(days=days):
            continue
        message = world.messages[e["message_id"]]
        if "campaign_id" in spec and message["campaign_id"] != spec["campaign_id"]:
            continue
        if "step_id" in spec and message["step_id"] != spec["step_id"]:
            continue
        found = True
        break
    return not found if kind.startswith("not_") else found


# ---------------------------------------------------------------------------------------------
# Random rules.


def _pick_text(rng: random.Random, pool: list[str]) -> str:
    value = rng.choice(pool + ["nothing-like-it"])
    if value and rng.random() < 0.3:
        cut = rng.randrange(1, len(value) + 1)
        value = value[:cut] if rng.random() < 0.5 else value[len(value) - cut :]
    return value


FIELD_POOLS = {
    "role": ROLES, "stage": STAGES, "rejection_reason": REASONS, "location": LOCATIONS,
    "source": SOURCES, "status": STATUSES, "timezone": ZONES, "first_name": FIRST,
    "last_name": LAST, "email_domain": DOMAINS,
}  # fmt: skip


def _text_leaf(rng: random.Random, pool: list[str]) -> dict[str, Any]:
    op = rng.choice(seg.FIELD_OPS)
    if op in ("empty", "not_empty"):
        return {"op": op}
    if op == "in":
        return {"op": op, "value": rng.sample(pool + ["zzz"], rng.randrange(1, 3))}
    value = _pick_text(rng, pool)
    if op in ("contains", "starts_with") and not value:
        value = "a"
    return {"op": op, "value": value}


def leaf_field(rng: random.Random, world: World) -> dict[str, Any]:
    name = rng.choice(list(FIELD_POOLS))
    return {"field": name, **_text_leaf(rng, FIELD_POOLS[name])}


def leaf_date(rng: random.Random, world: World) -> dict[str, Any]:
    name = rng.choice(seg.DATE_FIELDS)
    op = rng.choice(seg.DATE_OPS)
    if op in ("within_days", "older_than_days"):
        return {"field": name, "op": op, "value": rng.randrange(1, 400)}
    when = world.now - timedelta(days=rng.randrange(0, 400), hours=rng.randrange(24))
    text = when.date().isoformat() if rng.random() < 0.5 else when.isoformat()
    return {"field": name, "op": op, "value": text}


def leaf_attribute(rng: random.Random, world: World) -> dict[str, Any]:
    name, pool = rng.choice(
        [("seniority", SENIORITY), ("team.name", TEAMS), ("years", ["3", "7", "10"]),
         ("missing", ["x"])]
    )  # fmt: skip
    return {"attribute": name, **_text_leaf(rng, pool)}


def leaf_sets(rng: random.Random, world: World) -> dict[str, Any]:
    key, pool = rng.choice([("skills", SKILLS), ("tags", TAGS)])
    values = rng.sample(pool + ["nope"], rng.randrange(1, 4))
    if rng.random() < 0.3:
        values = [v.upper() for v in values]  # rules are normalised to lower case
    return {key: {rng.choice(["any", "all"]): values}}


def leaf_tag(rng: random.Random, world: World) -> dict[str, Any]:
    return {"tag": rng.choice(TAGS + ["nope"])}


def leaf_engagement(rng: random.Random, world: World) -> dict[str, Any]:
    kind = rng.choice(seg.ENGAGEMENT)
    spec: dict[str, Any] = {}
    window = "days" if kind.startswith("not_") else "within_days"
    if window == "days" or rng.random() < 0.7:
        spec[window] = rng.choice([1, 7, 30, 60, 90, 365])
    if kind != "replied":
        roll = rng.random()
        if roll < 0.25:
            spec["campaign_id"] = rng.choice(world.campaign_ids)
        elif roll < 0.4:
            spec["step_id"] = rng.choice(world.step_ids)
        if rng.random() < 0.25:
            spec["include_machine"] = True
    return {kind: spec}


def leaf_score(rng: random.Random, world: World) -> dict[str, Any]:
    ops = rng.sample(seg.NUMBER_OPS, rng.randrange(1, 3))
    return {"engagement_score": {op: rng.choice([0, 0.5, 1, 2.5, 3, 7.5]) for op in ops}}


def leaf_rated(rng: random.Random, world: World) -> dict[str, Any]:
    spec: dict[str, Any] = {rng.choice(seg.NUMBER_OPS): rng.randrange(1, 6)}
    if rng.random() < 0.3:
        spec["campaign_id"] = rng.choice(world.campaign_ids)
    return {"rated": spec}


LEAVES: dict[str, Callable[[random.Random, World], dict[str, Any]]] = {
    "field": leaf_field,
    "date": leaf_date,
    "attribute": leaf_attribute,
    "sets": leaf_sets,
    "tag": leaf_tag,
    "engagement": leaf_engagement,
    "score": leaf_score,
    "rated": leaf_rated,
}


def random_rule(
    rng: random.Random, world: World, leaf: Callable[..., dict[str, Any]], depth: int = 0
) -> dict[str, Any]:
    """A random tree whose leaves mostly come from ``leaf``, nested all/any/not up to depth 3."""
    if depth >= 3 or rng.random() < 0.35:
        chosen = leaf if rng.random() < 0.75 else rng.choice(list(LEAVES.values()))
        return chosen(rng, world)
    kind = rng.choice(["all", "any", "not"])
    if kind == "not":
        return {"not": random_rule(rng, world, leaf, depth + 1)}
    return {kind: [random_rule(rng, world, leaf, depth + 1) for _ in range(rng.randrange(1, 4))]}


# ---------------------------------------------------------------------------------------------
# The agreement tests.


@pytest.fixture
def world(database_url: str, clock: FileClock) -> Iterator[tuple[Flask, World]]:
    """An app on either database, holding a generated world."""
    app = make_app(database_url, clock)
    with app.app_context():
        yield app, build_world(random.Random(SEED), clock.now())
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("kind", list(LEAVES))
def test_compiled_rules_agree_with_python(world: tuple[Flask, World], kind: str) -> None:
    """For each rule kind, random trees select exactly the candidates Python says they do."""
    _, data = world
    rng = random.Random(f"{SEED}-{kind}")
    checked = 0
    for _ in range(40):
        rule = seg.validate(random_rule(rng, data, LEAVES[kind]))
        expected = [c["id"] for c in data.candidates if evaluate(rule, c, data)]
        got = list(db.session.scalars(seg.members(rule, data.now)))
        assert got == expected, rule
        # With a session, tag names are resolved to ids first: the same members.
        got = list(db.session.scalars(seg.members(rule, data.now, db.session)))
        assert got == expected, rule
        assert seg.count(db.session, rule, data.now) == len(expected)
        checked += bool(expected) and len(expected) < len(data.candidates)
    assert checked >= 5  # the trees are not all trivially empty or full


def test_paging_walks_every_member_once(world: tuple[Flask, World]) -> None:
    """Keyset paging yields the members in id order with no gap and no repeat."""
    _, data = world
    rule = {"any": [{"tag": "vip"}, {"skills": {"any": ["python"]}}, {"opened": {}}]}
    expected = [c["id"] for c in data.candidates if evaluate(seg.validate(rule), c, data)]
    seen: list[int] = []
    after = None
    while batch := seg.page(db.session, rule, data.now, after=after, limit=17):
        seen += batch
        after = batch[-1]
    assert seen == expected
    sample = seg.sample(db.session, rule, data.now, n=5)
    assert [c.id for c in sample] == sorted(expected, reverse=True)[:5]


def test_summary_columns_answer_plain_engagement(world: tuple[Flask, World]) -> None:
    """Any-campaign, human-only rules read the summary columns, not the events."""
    _, data = world
    sql = str(seg.compile_rules({"opened": {"within_days": 30}}, data.now))
    assert "last_opened_at" in sql and "events" not in sql
    sql = str(seg.compile_rules({"not_opened": {"days": 60}}, data.now))
    assert "last_opened_at" in sql and "events" not in sql
    sql = str(seg.compile_rules({"clicked": {"within_days": 30, "campaign_id": 1}}, data.now))
    assert "events" in sql


# ---------------------------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize(
    ("rules", "path", "words"),
    [
        ([], "rules", "JSON object"),
        ({"all": [{"field": "role", "op": "eq", "value": "x"}, {"tag": "a"},
                  {"field": "role", "op": "equals", "value": "x"}]},
         "rules.all[2].op", "unknown operator 'equals'; use one of eq, neq, in"),
        ({"any": []}, "rules.any", "at least one"),
        ({"all": {"tag": "x"}}, "rules.all", "list of rules"),
        ({"not": {"feild": "role"}}, "rules.not", "unknown rule 'feild'"),
        ({"field": "salary", "op": "eq", "value": 1}, "rules.field", "unknown field 'salary'"),
        ({"field": "role", "op": "in", "value": "x"}, "rules.value", "non-empty list"),
        ({"field": "role", "op": "eq"}, "rules.value", "required"),
        ({"field": "created_at", "op": "before", "value": "yesterday"}, "rules.value", "date"),
        ({"field": "created_at", "op": "within_days", "value": -3}, "rules.value", "whole"),
        ({"skills": ["python"]}, "rules.skills", '{"any": [...]}'),
        ({"opened": {"within_days": 30, "campain_id": 3}}, "rules.opened.campain_id",
         "unknown key"),
        ({"not_opened": {}}, "rules.not_opened.days", "required"),
        ({"clicked": {"campaign_id": "three"}}, "rules.clicked.campaign_id", "positive"),
        ({"engagement_score": {"atleast": 2}}, "rules.engagement_score.atleast",
         "unknown operator"),
        ({"rated": {"lte": 9}}, "rules.rated.lte", "from 1 to 5"),
        ({"attribute": "a b", "op": "eq", "value": "x"}, "rules.attribute", "key of letters"),
        ({"tag": "x", "all": []}, "rules", "not several"),
        ({"all": [{"any": [{"not": {"tag": ""}}]}]}, "rules.all[0].any[0].not.tag", "empty"),
    ],
)  # fmt: skip
def test_validation_points_at_the_bad_part(rules: Any, path: str, words: str) -> None:
    """Each mistake is reported at its path, with what to write instead."""
    with pytest.raises(ValidationError) as caught:
        seg.validate(rules)
    assert path in caught.value.fields, caught.value.fields
    assert words in caught.value.fields[path]
    assert caught.value.message.startswith(path)


def test_validation_normalises() -> None:
    """Tags and skills are matched in lower case; text is trimmed."""
    assert seg.validate({"all": [{"tags": {"any": [" VIP "]}}, {"tag": "Backend"}]}) == {
        "all": [{"tags": {"any": ["vip"]}}, {"tag": "backend"}]
    }
    assert seg.validate({"field": "created_at", "op": "after", "value": "2026-01-01"}) == {
        "field": "created_at",
        "op": "after",
        "value": "2026-01-01T00:00:00+00:00",
    }
