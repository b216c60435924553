"""schemathesis against /api/v1/openapi.json, with every check on: no 5xx, every status and
response documented, bad input rejected, 405 with ``Allow``, ids beyond 64 bits a 404.

Each operation gets a bounded number of generated requests (make test stays fast) with an
admin's bearer token, and the webhooks a valid HMAC signature of the body they carry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.generation.meta import ParameterLocation

from nurture.extensions import db
from nurture.web.api.openapi import openapi_document
from nurture.web.api.routes import SIGNATURE
from tests.conftest import auth_headers

BOUNCE_SECRET = "test-bounce-secret"
# What a schema cannot say: a template, a segment or a candidate that exists, an address
# email-validator accepts. Valid-looking requests naming such things get a 422, never a 5xx.
ACCEPTED = ["2xx", "401", "403", "404", "409", "422"]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        "generation": {"max-examples": 20},
    }
)
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


@pytest.fixture
def fuzzed_app(app: Flask) -> Iterator[Flask]:
    """The test app with both webhooks configured."""
    app.config["BOUNCE_WEBHOOK_SECRET"] = BOUNCE_SECRET
    yield app


@pytest.fixture
def admin(fuzzed_app: Flask) -> dict[str, str]:
    """An admin's bearer token, for every generated request of an operation."""
    return auth_headers(fuzzed_app, "admin")


# The document the app serves at /api/v1/openapi.json (test_openapi.py checks they are one),
# loaded at collection: schemathesis' lazy fixture loader does not run on this pytest.
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


def _signed(case, secret: str) -> dict:
    """The body as sent, and its signature where the case carries a well-formed one."""
    if case.headers is None or not _SIGNATURE.fullmatch(str(case.headers.get(SIGNATURE, ""))):
        return {}  # a missing or malformed signature is what this case tests
    if isinstance(case.body, bytes | str):
        body = case.body.encode() if isinstance(case.body, str) else case.body
    else:
        body = b"" if case.body is None else json.dumps(case.body).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"data": body, "headers": {SIGNATURE: f"sha256={digest}"}}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_document(case, fuzzed_app: Flask, admin: dict[str, str]) -> None:
    # A case generated with invalid headers (a missing or malformed Authorization) is sent as
    # generated: adding the admin's token would turn it into another request.
    unauthorised = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    headers = {} if unauthorised else dict(admin)
    secret = {"/ats/events": fuzzed_app.config["ATS_SECRET"], "/bounces": BOUNCE_SECRET}.get(
        case.path
    )
    extra = _signed(case, secret) if secret else {}
    headers.update(extra.pop("headers", {}))
    case.operation.schema.app = fuzzed_app  # requests go to this test's app, in-process
    try:
        case.call_and_validate(headers=headers, app=fuzzed_app, **extra)
    finally:
        # Requests share the test's app context and session; end what one left open.
        db.session.rollback()
