"""The OpenAPI document is the API: every route is in it, each documented body is the model the
route validates, and each documented status is one the route answers."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from flask import Flask

from nurture.core.inputs import MAX_ID
from nurture.extensions import db
from nurture.web.api import imports as api_imports
from nurture.web.api.openapi import REF, openapi_document
from nurture.web.api.routes import OPERATIONS, Operation
from tests.conftest import auth_headers

PREFIX = "/api/v1"
# Statuses a generic request cannot produce; the test named beside each shows the route does.
SHOWN_ELSEWHERE = {
    201: "the create tests in tests/web/api (test_create_a_drip_answers_with_its_steps, ...)",
    200: "every test in tests/web/api that reads or changes something",
    202: "test_import_api.py::test_a_large_file_goes_to_a_worker",
    409: "test_campaigns.py::test_pausing_a_draft_is_a_json_409_and_changes_nothing, "
    "test_jobs.py (an archived alert's approval)",
}
# A 404 no generic request gets: the body names what does not exist (every id in a path is
# checked here with an id beyond the range).
BODY_404 = {"referral_link": "test_referrals.py::test_a_referral_link_by_api_is_checked"}


def _rule_path(rule: str) -> str:
    """A Flask rule of the app's URL map as a document path."""
    import re

    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.removeprefix(PREFIX))


def test_every_api_route_is_in_the_document(app: Flask, client) -> None:
    served = client.get(f"{PREFIX}/openapi.json").json
    assert served == json.loads(json.dumps(openapi_document()))
    routes = {
        (_rule_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(f"{PREFIX}/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in served["paths"].items() for method in item}
    assert routes == documented
    assert len(routes) == len(OPERATIONS)


def _component(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].removeprefix(REF.format(model=""))
    return doc["components"]["schemas"][name]


@pytest.mark.parametrize(
    "op", [op for op in OPERATIONS if op.body or op.form], ids=lambda op: f"{op.method} {op.rule}"
)
def test_each_documented_body_is_the_model_the_route_validates(op: Operation) -> None:
    doc = openapi_document()
    body = doc["paths"][op.path][op.method.lower()]["requestBody"]
    media = "multipart/form-data" if op.form else "application/json"
    model = op.form or op.body
    assert body["required"] is True
    expected = model.model_json_schema(ref_template=REF)
    defs = expected.pop("$defs", {})
    assert _component(body["content"][media]["schema"], doc) == expected
    for name, schema in defs.items():
        assert doc["components"]["schemas"][name] == schema


def _wrong(op: Operation) -> Any:
    """A body of the right kind (an object) whose first property has a value no type accepts."""
    schema = (op.body or op.form).model_json_schema()
    properties = schema.get("properties") or schema["$defs"]["BounceReport"]["properties"]
    return {next(iter(properties)): [[{"not": "this"}]]}


def _request(client, op: Operation, ids: int = 1, **kwargs: Any):
    path = PREFIX + op.path.format(**dict.fromkeys(op.path_params, ids))
    answer = client.open(path, method=op.method, **kwargs)
    # Requests share this test's app context and session: what a read left open (a token's
    # last use) would hold SQLite's write lock.
    db.session.rollback()
    return answer


def _observed(app: Flask, client, op: Operation) -> set[int]:
    """The statuses a few generic requests get from the route."""
    seen: set[int] = set()
    admin = auth_headers(app, "admin")
    if op.role:
        seen.add(_request(client, op).status_code)  # no token
        seen.add(_request(client, op, headers=auth_headers(app, "viewer")).status_code)
    if op.path_params:
        seen.add(_request(client, op, ids=MAX_ID + 1, headers=admin).status_code)
        seen.add(_request(client, op, ids=MAX_ID, headers=admin).status_code)
    if op.signed:
        seen.add(_request(client, op, data=b"{}", content_type="application/json").status_code)
        secret, app.config[op.signed] = app.config.get(op.signed), None
        seen.add(_request(client, op, data=b"{}").status_code)
        app.config[op.signed] = secret
    if op.body:
        unsigned = not op.signed
        for raw in (b"[not json", json.dumps(_wrong(op)).encode()):
            answer = _request(client, op, data=raw, content_type="application/json", headers=admin)
            seen.add(answer.status_code if unsigned else _signed_status(app, client, op, raw))
    if op.form:
        seen.add(_request(client, op, data={"file": [1]}, headers=admin).status_code)
    if op.query:
        # "x" is no number, address or state any query parameter takes.
        wrong = dict.fromkeys(op.query.model_fields, "x")
        seen.add(_request(client, op, query_string=wrong, headers=admin).status_code)
    if op.body or op.form:
        app.config["MAX_CONTENT_LENGTH"] = 64
        seen.add(_request(client, op, data=b"x" * 65, headers=admin).status_code)
        app.config["MAX_CONTENT_LENGTH"] = None
    return seen


def _signed_status(app: Flask, client, op: Operation, raw: bytes) -> int:
    import hashlib
    import hmac

    secret = app.config[op.signed] or "configured-for-this-test"
    app.config[op.signed] = secret
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return _request(
        client, op, data=raw, content_type="application/json",
        headers={"X-Nurture-Signature": f"sha256={digest}"},
    ).status_code  # fmt: skip


def test_each_documented_status_is_one_the_route_answers(app: Flask, client, monkeypatch) -> None:
    app.config["BOUNCE_WEBHOOK_SECRET"] = "test-bounce-secret"
    unreached = {}
    for op in OPERATIONS:
        seen = _observed(app, client, op)
        documented = set(op.statuses())
        assert seen <= documented, (op.endpoint, seen - documented)
        missing = (
            documented - seen - set(SHOWN_ELSEWHERE) - ({404} if op.endpoint in BODY_404 else set())
        )
        if missing:
            unreached[op.endpoint] = missing
    # The import's 503: Redis is down (this app points at a closed port) for a large file.
    monkeypatch.setattr(api_imports, "SYNC_MAX_ROWS", 1)
    csv = b"email\na@example.org\nb@example.org\n"
    answer = client.post(
        f"{PREFIX}/candidates/import",
        data={"file": (io.BytesIO(csv), "two.csv")},
        headers=auth_headers(app, "editor"),
        content_type="multipart/form-data",
    )
    assert answer.status_code == 503 and answer.json["error"]["code"] == "queue_unavailable"
    assert unreached == {"import_candidates": {503}}
