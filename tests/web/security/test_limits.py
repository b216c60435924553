"""Requests are bounded: a body over the limit is refused (413) before it is read, the open
webhooks check the length before they hash a byte, and an id beyond what a row can have is a 404
on every route that takes one, never a 500."""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
import time

import pytest
from flask import Flask

from nurture.models.base import MAX_ID
from tests.web.admin.conftest import LiveServer
from tests.web.security.conftest import as_user

FIFTY_MB = 50 * 1024 * 1024


def raw_post(server: LiveServer, path: str, length: int, sent: bytes, headers: str = "") -> str:
    """POST announcing ``length`` bytes but sending only ``sent``; the status line, or ""."""
    host, port = server.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{headers}\r\n".encode()
            + sent
        )
        conn.settimeout(5)
        try:
            return conn.recv(200).decode("latin-1").split("\r\n")[0]
        except TimeoutError:
            return ""  # the server is still waiting for the body: it meant to read it


@pytest.mark.parametrize("path", ["/api/v1/ats/events", "/api/v1/bounces"])
def test_a_50_mb_webhook_body_is_refused_at_once_unread(app: Flask, path: str) -> None:
    app.config["BOUNCE_WEBHOOK_SECRET"] = "bounce-secret"
    server = LiveServer(app)
    try:
        signature = "sha256=" + hmac.new(b"x", b"x", hashlib.sha256).hexdigest()
        started = time.monotonic()
        status = raw_post(
            server, path, FIFTY_MB, b"{" * 1024, headers=f"X-Nurture-Signature: {signature}\r\n"
        )
        assert status.startswith("HTTP/1.1 413"), status
        assert time.monotonic() - started < 5
    finally:
        server.stop()


def test_every_route_refuses_a_body_over_the_request_limit(app: Flask, people) -> None:
    server = LiveServer(app)
    try:
        limit = app.config["MAX_CONTENT_LENGTH"]
        for path in ("/api/v1/candidates", "/admin/login", "/u/abc"):
            assert raw_post(server, path, limit + 1, b"").startswith("HTTP/1.1 413"), path
    finally:
        server.stop()


def test_a_20_mb_csv_import_still_fits(app: Flask, people) -> None:
    csv = b"email\n" + b"someone@example.org\n" * (20 * 1024 * 1024 // 20)
    body = (
        b"--B\r\nContent-Disposition: form-data; name=other; filename=big.csv\r\n"
        b"Content-Type: text/csv\r\n\r\n" + csv + b"\r\n--B--\r\n"
    )
    answer = app.test_client().post(
        "/api/v1/candidates/import",
        data=body,
        content_type="multipart/form-data; boundary=B",
        headers={"Authorization": f"Bearer {people['editor']}"},
    )
    # Past the size limit: the answer is about the form, not its size.
    assert answer.status_code == 422 and answer.json["error"]["fields"] == {"file": "is required"}


def test_a_signed_webhook_within_its_limit_is_read(app: Flask) -> None:
    from tests.conftest import ats_post

    answer = ats_post(app.test_client(), {"type": "candidate.hired", "candidate": {}})
    assert answer.status_code in (200, 422)  # read and judged on its content


# --- ids ---------------------------------------------------------------------------------------


def int_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every route with an <int:…> part."""
    found = []
    for rule in app.url_map.iter_rules():
        if "<int:" not in rule.rule:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule, rule.endpoint))
    return found


def filled(rule: str, number: int) -> str:
    path = re.sub(r"<int:\w+>", str(number), rule)
    path = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m[1].strip(), path)
    return re.sub(r"<(?:\w+:)?\w+>", "x", path)


def test_ids_beyond_a_row_are_404_on_every_route(csrf_off: Flask, people) -> None:
    app = csrf_off
    routes = int_routes(app)
    assert len(routes) > 40  # the admin's and the API's
    admin = as_user(app, "admin")
    bearer = {"Authorization": f"Bearer {people['admin']}"}
    for number in (MAX_ID + 1, 21326301286881235566592, 9 * 10**40):
        for method, rule, _endpoint in routes:
            path = filled(rule, number)
            if rule.startswith("/api/"):
                answer = app.test_client().open(path, method=method, headers=bearer, json={})
            else:
                answer = admin.open(path, method=method)
            assert answer.status_code == 404, (method, path, answer.status_code)
            if rule.startswith("/api/"):
                assert answer.json["error"]["code"] == "not_found"


def test_the_largest_id_still_reaches_the_view(csrf_off: Flask, people) -> None:
    bearer = {"Authorization": f"Bearer {people['admin']}"}
    answer = csrf_off.test_client().get(f"/api/v1/campaigns/{MAX_ID}", headers=bearer)
    assert answer.status_code == 404 and answer.json["error"]["message"] == f"no campaign {MAX_ID}"
    page = as_user(csrf_off, "viewer").get(f"/admin/candidates/{MAX_ID}")
    assert page.status_code == 404


def test_huge_numbers_in_query_strings_are_no_500(app: Flask, people) -> None:
    drip = {"name": "D", "steps": [{"template": "rejection_followup"}]}
    bearer = {"Authorization": f"Bearer {people['admin']}"}
    campaign = app.test_client().post("/api/v1/campaigns", json=drip, headers=bearer).json["id"]
    admin = as_user(app, "admin")
    big = "9" * 30
    for path in (
        f"/admin/campaigns/{campaign}?page={big}",
        f"/admin/broadcasts?page={big}",
        f"/admin/campaigns?page={big}",
        f"/admin/candidates?page={big}",
        f"/admin/candidates?show={big}",
        f"/admin/candidates?score_min={big}",
        f"/admin/jobs?page={big}",
        f"/admin/imports?page={big}",
        f"/admin/suppressions?page={big}",
    ):
        assert admin.get(path).status_code in (200, 400), path
    for path in (f"/api/v1/segments?limit={big}", f"/api/v1/segments?after={big}"):
        assert app.test_client().get(path, headers=bearer).status_code in (200, 422), path
