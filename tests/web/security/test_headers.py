"""Every response carries the security headers; cookies are Secure behind https; no server says
which versions it runs, whether Werkzeug's development server or gunicorn."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from nurture.core.tokens import Tokens
from nurture.models import Candidate
from tests.support.paths import ROOT
from tests.web.security.conftest import as_user, sign_in


def _common(headers) -> None:
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Strict-Transport-Security"].startswith("max-age=")  # BASE_URL is https


def test_admin_pages_have_a_nonce_csp_and_the_nonce_is_on_their_scripts(app: Flask, people):
    page = as_user(app, "editor").get("/admin/templates/new")
    _common(page.headers)
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)[1]
    assert "script-src 'self' 'nonce-" in policy and "unsafe-eval" not in policy
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    # The admin's scripts are its own static files; any inline one (not a JSON data block)
    # would need this response's nonce.
    assert re.search(r'<script src="/admin/static/templates-editor\.js', page.text)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page.text)
    code = [attrs for attrs in inline if 'type="application/json"' not in attrs]
    assert all(f'nonce="{nonce}"' in attrs for attrs in code)
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert page.headers["Cache-Control"] == "no-store"
    again = as_user(app, "editor").get("/admin/templates/new").headers["Content-Security-Policy"]
    assert nonce not in again  # a new nonce per response


def test_no_inline_event_handlers_or_javascript_urls_in_the_admin_templates() -> None:
    templates = [*ROOT.glob("nurture/web/**/templates/**/*.html")]
    assert templates
    for path in templates:
        text = path.read_text("utf-8")
        assert not re.search(r"\son[a-z]+\s*=", text), path  # CSP refuses inline handlers
        assert "javascript:" not in text.lower(), path
        for attrs in re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", text):
            if 'type="application/json"' not in attrs:
                assert "csp_nonce()" in attrs, f"{path}: an inline <script> without the nonce"


def test_api_answers_have_a_strict_policy(app: Flask, people) -> None:
    answer = app.test_client().get(
        "/api/v1/segments", headers={"Authorization": f"Bearer {people['viewer']}"}
    )
    _common(answer.headers)
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert answer.headers["Cache-Control"] == "no-store"
    missing = app.test_client().get("/nowhere")
    _common(missing.headers)


def test_public_token_pages_send_no_referrer(app: Flask, people) -> None:
    now = app.extensions["nurture.clock"].now()
    from nurture.extensions import db

    candidate = Candidate(email="ana@example.org", first_name="Ana", created_at=now, updated_at=now)
    db.session.add(candidate)
    db.session.commit()
    tokens = Tokens.from_config(app.config)
    for url in (
        tokens.unsubscribe_url(candidate.id, None),
        tokens.preferences_url(candidate.id, None),
    ):
        path = url.removeprefix(tokens.base_url)
        page = app.test_client().get(path)
        assert page.status_code == 200, path
        _common(page.headers)
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "script-src" not in page.headers["Content-Security-Policy"]  # none at all
    bad = app.test_client().get("/c/forged")
    assert bad.status_code == 404 and bad.headers["Referrer-Policy"] == "no-referrer"


def test_cookies_are_secure_behind_https_and_not_over_plain_http(app: Flask, people, clock):
    client = sign_in(app, "viewer")
    cookie = client.get_cookie("session")
    assert cookie.secure and cookie.http_only and cookie.same_site == "Lax"
    from tests.conftest import make_app

    plain = make_app(
        f"sqlite:///{clock.path.parent / 'plain.db'}", clock, BASE_URL="http://127.0.0.1:5000"
    )
    answer = plain.test_client().get("/admin/login")
    assert "Secure" not in answer.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in answer.headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode()) from None
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start")


@pytest.mark.parametrize("server", ["nurture web", "gunicorn"])
def test_no_server_says_its_versions(server: str, sqlite_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "NURTURE_DATABASE_URL": sqlite_url,
        "NURTURE_SECRET_KEY": "x" * 40,
        "NURTURE_INSTANCE_PATH": str(tmp_path / "instance"),
        "NURTURE_BASE_URL": "https://nurture.example.com",
    }
    bin_dir = Path(sys.executable).parent
    if server == "gunicorn":
        command = [str(bin_dir / "gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "1", "wsgi:app"]
    else:
        command = [str(bin_dir / "nurture"), "web", "--port", str(port)]
    process = _serve(command, env, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login", timeout=10) as answer:
            headers = answer.headers
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
    banner = headers.get_all("Server") or []
    assert banner in (["nurture"], ["gunicorn"]), banner
    assert not re.search(r"\d", " ".join(banner)), banner  # no version number of anything
    assert "Python" not in " ".join(banner) and "Werkzeug" not in " ".join(banner)
    assert headers["X-Frame-Options"] == "DENY"
    assert "nonce-" in headers["Content-Security-Policy"]
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in headers["Set-Cookie"]
