"""The suppression-list API: add addresses with a report, check one, count; roles and errors."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.conftest import auth_headers

URL = "/api/v1/suppressions"


def test_add_check_and_count(app: Flask, client) -> None:
    """An editor adds a list; a viewer checks addresses and reads the counts."""
    editor, viewer = auth_headers(app, "editor"), auth_headers(app, "viewer")
    body = {
        "emails": ["ana@example.org", "not-an-email", "Bo@Example.org", "ana@example.org"],
        "reason": "bounced",
    }
    answer = client.post(URL, json=body, headers=editor)
    assert answer.status_code == 200, answer.json
    report = answer.json
    assert (report["added"], report["already_suppressed"], report["duplicates"]) == (2, 0, 1)
    assert report["rejected_count"] == 1
    assert report["rejected"][0]["line"] == 2 and report["rejected"][0]["value"] == "not-an-email"
    assert "@-sign" in report["rejected"][0]["reason"]

    again = client.post(URL, json={"emails": ["bo@example.org"]}, headers=editor).json
    assert (again["reason"], again["added"], again["already_suppressed"]) == ("manual", 0, 1)

    check = client.get(f"{URL}/check", query_string={"email": "BO@example.org"}, headers=viewer)
    assert check.status_code == 200
    assert check.json["suppressed"] is True and check.json["reason"] == "bounced"
    assert check.json["since"].startswith("2026-03-02T09:00")
    clear = client.get(f"{URL}/check", query_string={"email": "cy@example.org"}, headers=viewer)
    assert clear.json == {"suppressed": False, "reason": None, "since": None}

    counts = client.get(URL, headers=viewer).json
    assert counts["total"] == 2 and counts["by_reason"]["bounced"] == 2


def test_a_token_is_required_and_viewers_cannot_add(app: Flask, client) -> None:
    body = {"emails": ["ana@example.org"]}
    for method, path in (("post", URL), ("get", URL), ("get", f"{URL}/check?email=a@b.org")):
        answer = getattr(client, method)(path, json=body if method == "post" else None)
        assert answer.status_code == 401, path
        assert answer.json["error"]["code"] == "unauthorized"
    refused = client.post(URL, json=body, headers=auth_headers(app, "viewer"))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
    assert client.get(URL, headers=auth_headers(app, "viewer")).json["total"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"emails": ["ana@example.org"], "reason": "erased"}, "reason"),
        ({"emails": ["ana@example.org"], "reason": 3}, "reason"),
        ({"emails": []}, "emails"),
        ({"emails": ["  ", ""]}, "emails"),
        ({"emails": "ana@example.org"}, "emails"),
        ({"emails": [1, 2]}, "emails"),
        ({}, "emails"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(app: Flask, client, body, field) -> None:
    answer = client.post(URL, json=body, headers=auth_headers(app, "editor"))
    assert answer.status_code == 422, answer.json
    assert field in answer.json["error"]["fields"]
    assert client.get(URL, headers=auth_headers(app, "viewer")).json["total"] == 0


def test_check_needs_a_valid_address(app: Flask, client) -> None:
    viewer = auth_headers(app, "viewer")
    for query in ("", "?email=", "?email=nope"):
        answer = client.get(f"{URL}/check{query}", headers=viewer)
        assert answer.status_code == 422
        assert "email" in answer.json["error"]["fields"]


def test_the_openapi_document_lists_the_routes(client) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert set(paths[URL.removeprefix("/api/v1")]) == {"get", "post"}
    assert "get" in paths["/suppressions/check"]
