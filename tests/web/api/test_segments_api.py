"""The segments API: save rules, count, page through members, preview; auth and errors."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import insert

from nurture.extensions import db
from nurture.models import Candidate
from nurture.runtime import FileClock
from tests.conftest import auth_headers

DESIGNERS = {"all": [{"field": "role", "op": "eq", "value": "Designer"}]}


def _people(clock: FileClock, n: int = 30) -> None:
    now = clock.now()
    rows = [
        {
            "email": f"p{i}@example.org",
            "first_name": f"P{i}",
            "role": "Designer" if i % 3 == 0 else "Engineer",
            "last_opened_at": now - timedelta(days=i) if i % 2 else None,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1, n + 1)
    ]
    db.session.execute(insert(Candidate), rows)
    db.session.commit()


def test_create_count_and_page(app: Flask, client, auth, clock: FileClock) -> None:
    """A saved segment answers its count and pages through its members by id."""
    _people(clock)
    answer = client.post("/api/v1/segments", json={"name": "Designers", "rules": DESIGNERS},
                         headers=auth)  # fmt: skip
    assert answer.status_code == 201
    segment_id = answer.json["id"]
    assert answer.json["count"] == 10
    viewer = auth_headers(app, "viewer")
    got = client.get(f"/api/v1/segments/{segment_id}", headers=viewer).json
    assert got["name"] == "Designers" and got["rules"] == DESIGNERS
    assert client.get(f"/api/v1/segments/{segment_id}/count", headers=viewer).json["count"] == 10

    seen, after = [], ""
    while True:
        page = client.get(f"/api/v1/segments/{segment_id}/members?limit=4&after={after}",
                          headers=viewer).json  # fmt: skip
        seen += [m["email"] for m in page["members"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == [f"p{i}@example.org" for i in range(3, 31, 3)]

    changed = client.put(
        f"/api/v1/segments/{segment_id}",
        json={"rules": {"all": [*DESIGNERS["all"], {"opened": {"within_days": 10}}]}},
        headers=auth,
    )
    assert changed.status_code == 200 and changed.json["count"] == 2  # p3 and p9


def test_preview_counts_without_saving(client, auth, clock: FileClock) -> None:
    """The builder's preview: count and a sample of the latest members."""
    _people(clock)
    answer = client.post(
        "/api/v1/segments/preview",
        json={"rules": {"not_opened": {"days": 60}}},
        headers=auth,
    )
    assert answer.status_code == 200
    assert answer.json["count"] == 15
    assert [m["email"] for m in answer.json["sample"]][:2] == ["p30@example.org", "p28@example.org"]
    assert client.get("/api/v1/segments", headers=auth).json["segments"] == []


def test_bad_rules_are_422_with_the_path(client, auth) -> None:
    """A mistake deep in the tree is named by its path; nothing is saved."""
    rules = {"all": [{"tag": "vip"}, {"any": [{"field": "role", "op": "equals", "value": "x"}]}]}
    answer = client.post("/api/v1/segments", json={"name": "X", "rules": rules}, headers=auth)
    assert answer.status_code == 422
    fields = answer.json["error"]["fields"]
    assert "unknown operator 'equals'" in fields["rules.all[1].any[0].op"]
    answer = client.post("/api/v1/segments", json={"rules": {"all": []}}, headers=auth)
    assert answer.json["error"]["fields"] == {"name": "is required"}
    preview = client.post("/api/v1/segments/preview", json={"rules": []}, headers=auth)
    assert preview.status_code == 422 and "rules" in preview.json["error"]["fields"]
    assert client.get("/api/v1/segments", headers=auth).json["segments"] == []


def test_names_are_unique_and_limits_checked(client, auth) -> None:
    """Duplicate names, bad paging arguments and unknown ids are clear 4xx answers."""
    first = client.post("/api/v1/segments", json={"name": "All", "rules": {"all": []}},
                        headers=auth)  # fmt: skip
    again = client.post("/api/v1/segments", json={"name": "All", "rules": {"all": []}},
                        headers=auth)  # fmt: skip
    assert again.status_code == 422 and "already exists" in again.json["error"]["fields"]["name"]
    bad = client.get(f"/api/v1/segments/{first.json['id']}/members?limit=0", headers=auth)
    assert bad.status_code == 422 and "limit" in bad.json["error"]["fields"]
    assert client.get("/api/v1/segments/999/count", headers=auth).status_code == 404


def test_roles(app: Flask, client) -> None:
    """Viewers read and preview (as in the admin's builder); only editors save; no token, no
    answer."""
    viewer = auth_headers(app, "viewer")
    body = {"name": "V", "rules": {"all": []}}
    assert client.post("/api/v1/segments", json=body, headers=viewer).status_code == 403
    assert client.post("/api/v1/segments/preview", json=body, headers=viewer).status_code == 200
    assert client.get("/api/v1/segments").status_code == 401
    assert client.get("/api/v1/segments", headers=viewer).status_code == 200
