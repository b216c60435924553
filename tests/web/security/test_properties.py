"""Property tests (hypothesis) of the three parsers strangers feed: the signed-token codec (every
link in every mail), the segment rule compiler (JSON from the API and the builder) and the CSV
importer (files from anyone's spreadsheet). Each either does its job or says what is wrong in
its own error, and never raises anything else. Example counts are modest, for `make test`."""

from __future__ import annotations

import codecs
import string
from datetime import timedelta

from flask import Flask
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from nurture.core.audience import segments
from nurture.core.errors import ValidationError
from nurture.core.tokens import BadToken, Tokens
from nurture.extensions import db
from nurture.models import Candidate
from nurture.workflows import imports
from tests.conftest import running_app

DB = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)

# --- the token codec ---------------------------------------------------------------------------

TOKENS = Tokens("a secret of the property tests", "https://nurture.test")
PURPOSES = st.sampled_from(["open", "click", "unsubscribe", "rating"])


@settings(max_examples=200, deadline=None)
@given(purpose=PURPOSES, payload=json_values)
def test_any_payload_round_trips(purpose: str, payload) -> None:
    assert TOKENS.load(purpose, TOKENS.sign(purpose, payload)) == payload


@st.composite
def mutated(draw, token: str) -> str:
    """``token`` with characters replaced, inserted, deleted, or cut short."""
    alphabet = string.ascii_letters + string.digits + "-_.=~%+/ \x00é€"
    chars = list(token)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        at = draw(st.integers(0, max(len(chars) - 1, 0)))
        if kind == "replace" and chars:
            chars[at] = draw(st.sampled_from(alphabet))
        elif kind == "insert":
            chars.insert(at, draw(st.sampled_from(alphabet)))
        elif kind == "delete" and chars:
            del chars[at]
        elif kind == "cut":
            chars = chars[:at]
    return "".join(chars)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), purpose=PURPOSES, payload=json_values)
def test_a_mutated_token_is_bad_never_another_error(data, purpose: str, payload) -> None:
    token = TOKENS.sign(purpose, payload)
    changed = data.draw(mutated(token))
    assume(changed != token)
    try:
        loaded = TOKENS.load(purpose, changed)
    except BadToken:
        return
    # Base64's spare bits: a different spelling of the same signed bytes, never other content.
    assert loaded == payload


@settings(max_examples=200, deadline=None)
@given(purpose=PURPOSES, text=st.text(max_size=200))
def test_any_text_is_a_bad_token(purpose: str, text: str) -> None:
    try:
        TOKENS.load(purpose, text)
    except BadToken:
        return
    raise AssertionError(f"{text!r} was accepted")


def test_a_token_for_one_purpose_is_bad_for_another() -> None:
    token = TOKENS.sign("click", [1, "https://example.com"])
    for purpose in ("open", "unsubscribe", "rating"):
        try:
            TOKENS.load(purpose, token)
        except BadToken:
            continue
        raise AssertionError(purpose)


# --- the segment rule compiler -----------------------------------------------------------------

FIELDS = [*segments.FIELDS, *segments.DATE_FIELDS, "nope"]
OPS = ["eq", "neq", "in", "contains", "starts_with", "empty", "not_empty", "before", "after"]
OPS += ["within_days", "older_than_days", "gt", "gte", "lt", "lte", "nope"]
KINDS = ["opened", "clicked", "not_opened", "not_clicked", "replied", "rated", "engagement_score"]
KEYS = ["within_days", "days", "campaign_id", "step_id", "include_machine", "gte", "lte", "eq"]
KEYS += ["gt", "lt", "any", "all", "nope"]


def rule_trees():
    """Trees shaped like rules, most of them valid and some wrong in one part: deep coverage of
    the compiler, not only of its first check."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**80), 2**80)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=12)
        | st.sampled_from(["2026-03-01", "2026-13-45", "30", "vip", "python"])
    )
    words = st.text(string.ascii_letters + " %_\\'\"é", min_size=1, max_size=10)
    days = st.integers(0, 5).flatmap(lambda n: scalars if n == 0 else st.integers(1, 400))
    numbers = st.one_of(st.floats(-10, 10, allow_nan=False), st.integers(-5, 5), scalars)
    text_ops = st.sampled_from(["eq", "neq", "contains", "starts_with", "empty", "not_empty"])
    valid = st.one_of(
        st.builds(
            lambda f, op, v: {"field": f, "op": op, "value": v},
            st.sampled_from(segments.FIELDS),
            text_ops,
            words,
        ),
        st.builds(
            lambda f, v: {"field": f, "op": "in", "value": v},
            st.sampled_from(segments.FIELDS),
            st.lists(words, min_size=1, max_size=3),
        ),
        st.builds(
            lambda f, op, v: {"field": f, "op": op, "value": v},
            st.sampled_from(segments.DATE_FIELDS),
            st.sampled_from(["before", "after"]),
            st.sampled_from(["2026-03-01", "2025-12-31T10:00:00+00:00"]) | scalars,
        ),
        st.builds(
            lambda f, op, v: {"field": f, "op": op, "value": v},
            st.sampled_from(segments.DATE_FIELDS),
            st.sampled_from(["within_days", "older_than_days"]),
            days,
        ),
        st.builds(lambda a, op, v: {"attribute": a, "op": op, "value": v}, words, text_ops, words),
        st.builds(
            lambda k, mode, v: {k: {mode: v}},
            st.sampled_from(["skills", "tags"]),
            st.sampled_from(["any", "all"]),
            st.lists(words, min_size=1, max_size=3),
        ),
        st.builds(lambda v: {"tag": v}, words),
        st.builds(
            lambda kind, spec: {kind: spec},
            st.sampled_from(["opened", "clicked", "replied"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "within_days": days,
                    "campaign_id": st.integers(1, 5) | scalars,
                    "include_machine": st.booleans(),
                },
            ),
        ),
        st.builds(
            lambda kind, d: {kind: {"days": d}},
            st.sampled_from(["not_opened", "not_clicked"]),
            days,
        ),
        st.builds(
            lambda op, v: {"engagement_score": {op: v}},
            st.sampled_from(["gte", "gt", "lte", "lt", "eq", "nope"]),
            numbers,
        ),
        st.builds(lambda op, v: {"rated": {op: v}}, st.sampled_from(["lte", "gte", "eq"]), numbers),
    )
    broken = st.one_of(
        st.fixed_dictionaries(
            {"field": st.sampled_from(FIELDS), "op": st.sampled_from(OPS)},
            optional={"value": scalars | st.lists(scalars, max_size=3)},
        ),
        st.dictionaries(
            st.sampled_from(KINDS),
            st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3) | scalars,
            min_size=1,
            max_size=1,
        ),
        json_values,
    )
    # One leaf in ten is wrong on purpose.
    leaf = st.integers(0, 9).flatmap(lambda n: broken if n == 0 else valid)

    def combined(inner):
        lists = st.dictionaries(
            st.sampled_from(["all", "any"]),
            st.lists(inner, min_size=1, max_size=4),
            min_size=1,
            max_size=1,
        )
        # Wrongly built: {"all": rule}, {"not": [..]}, {}, two operators in one object.
        garbage = st.dictionaries(st.sampled_from(["all", "any", "not", "x"]), inner, max_size=2)
        negated = st.fixed_dictionaries({"not": inner})
        pick = {0: garbage, 1: negated, 2: negated}
        return st.integers(0, 9).flatmap(lambda n: pick.get(n, lists))

    return st.recursive(leaf, combined, max_leaves=8)


def test_any_rule_tree_compiles_and_runs_or_names_what_is_wrong(database_url, clock) -> None:
    """On SQLite and on PostgreSQL: every tree that validates also runs."""
    with running_app(database_url, clock) as app:
        now = app.extensions["nurture.clock"].now()

        @DB
        @given(rules=rule_trees())
        def check(rules) -> None:
            try:
                valid = segments.validate(rules)
            except ValidationError as exc:
                event("refused")
                assert exc.fields, exc
                assert all(path.startswith("rules") for path in exc.fields), exc.fields
                return
            event("compiled")
            condition = segments.compile_rules(valid, now, session=db.session)
            query = select(Candidate.id).where(condition)
            for dialect in (sqlite.dialect(), postgresql.dialect()):
                str(query.compile(dialect=dialect))
            assert isinstance(segments.count(db.session, valid, now), int)
            db.session.rollback()

        check()


# --- the CSV importer --------------------------------------------------------------------------

cells = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", '"', '""', "a,b", "x\ny", "=1+1", "é", "🙂", "\r"]),
    st.builds(lambda n: f"person{n}@example.org", st.integers(0, 30)),
    st.sampled_from(["Europe/London", "Mars/Olympus", "2026-03-01T09:00:00+00:00", "yes"]),
)
headers = st.lists(
    st.sampled_from(
        ["email", "first_name", "last_name", "timezone", "tags", "skills", "role", "Email"]
    )
    | st.text(max_size=12),
    min_size=1,
    max_size=6,
)


@st.composite
def csv_uploads(draw) -> bytes:
    """CSV-like files in the encodings spreadsheets write, some of them broken; or any bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = draw(headers)
    if draw(st.integers(0, 4)):
        header = ["email", *[h for h in header if h.lower() != "email"]]
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row = draw(st.lists(cells, min_size=len(header) - 1, max_size=len(header) + 1))
        if row and header[0] == "email" and draw(st.integers(0, 3)):
            row[0] = f"person{draw(st.integers(0, 30))}@example.org"
        rows.append(row)

    def line(values: list[str]) -> str:
        quoted = draw(st.booleans())
        return delimiter.join(f'"{v}"' if quoted else v for v in values)

    text = "\n".join(line(r) for r in [header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]))
    data = text.encode(encoding, "replace")
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # cut anywhere, even mid-character
    return data


@DB
@given(data=csv_uploads())
def test_any_upload_imports_or_says_why_and_good_rows_land(app: Flask, data: bytes) -> None:
    now = app.extensions["nurture.clock"].now()
    try:
        job, _ = imports.create_import(db.session, data, "upload.csv", now)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        event("refused file")
        assert exc.fields, exc
        return
    rows = list(imports.iter_rows(job))
    good = {row.email for row in rows if not row.errors}
    try:
        imports.start(job)
    except ValidationError as exc:  # no column maps to the address
        db.session.rollback()
        event("no address column")
        assert exc.fields
        return
    event(f"imported, {'some' if good else 'no'} good rows")
    db.session.commit()
    done = imports.run_import(db.session, job.id, now + timedelta(seconds=1))
    assert done.status == "done", done.errors
    assert done.created_count + done.updated_count + done.rejected_count == len(rows)
    landed = set(db.session.scalars(select(Candidate.email).where(Candidate.email.in_(good))))
    assert landed == good


def test_an_odd_utf16_file_is_refused_not_a_crash(app: Flask) -> None:
    for data in (codecs.BOM_UTF16_LE + b"e\x00m\x00a", codecs.BOM_UTF16_BE + b"\x00e\x00"):
        try:
            imports.read_csv(data)
        except ValidationError as exc:
            assert "file" in exc.fields
