"""Browser fixtures: the app served on 127.0.0.1 and a real Chromium driven by Playwright."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from nurture.core.accounts.users import create_user
from nurture.extensions import db
from nurture.tasks.sending import close_sender
from tests.conftest import CHROMIUM_ARGS, chromium_path, make_app  # noqa: F401 - re-exported
from tests.support.paths import ARTIFACTS

PASSWORD = "correct horse battery staple"


class LiveServer:
    """The app served by a real HTTP server on 127.0.0.1 in a thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def live_app(sqlite_url, clock, tmp_path: Path, smtp, redis_url) -> Iterator[Flask]:
    """The app on a fresh database with an admin, an editor and a viewer, and real Redis/SMTP."""
    app = make_app(
        sqlite_url,
        clock,
        SMTP_URL=smtp.url,
        REDIS_URL=redis_url,
        BASE_URL="http://127.0.0.1:5000",
        MAILBOX_DIR=str(tmp_path / "mailbox"),
    )
    with app.app_context():
        now = clock.now()
        for role in ("admin", "editor", "viewer"):
            create_user(
                db.session, f"{role}@example.com", PASSWORD, role, now, name=f"{role.title()} User"
            )
        db.session.commit()
        yield app
        close_sender(app)
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def live_server(live_app: Flask) -> Iterator[LiveServer]:
    """``live_app`` on a real port."""
    server = LiveServer(live_app)
    yield server
    server.stop()


# Reports every Content-Security-Policy violation (in the page and its srcdoc frames) to the
# console, where the fixture below collects it.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline")
                + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


@pytest.fixture
def page(browser, live_server: LiveServer):
    """A fresh browser tab (desktop width) pointed at the live server.

    The admin runs under its real Content-Security-Policy; a page that breaks it (an inline
    script without the nonce, a blocked style or frame) fails the test that opened it.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    context.add_init_script(_REPORT_CSP)
    page = context.new_page()
    violations: list[str] = []

    def note(message) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("CSP violation"):
            violations.append(message.text)

    page.on("console", note)
    page.set_default_timeout(15000)
    page.csp_violations = violations  # type: ignore[attr-defined]
    yield page
    context.close()
    assert violations == [], "the admin broke its Content-Security-Policy:\n" + "\n".join(
        dict.fromkeys(violations)
    )


def login(page, role: str = "admin") -> None:
    """Sign in through the login form as the fixture user with ``role``."""
    page.goto("/admin/login")
    page.fill("input[name=email]", f"{role}@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/**")
    assert "/admin/login" not in page.url


def screenshot(page, name: str) -> list[Path]:
    """Save the page at 1280 px and 390 px wide under tests/artifacts/ (for people to look at)."""
    ARTIFACTS.mkdir(exist_ok=True)
    paths = []
    original = page.viewport_size
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        path = ARTIFACTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    page.set_viewport_size(original)
    return paths


def work_off(app: Flask) -> None:
    """Run a real RQ worker over the queue until it is empty (burst), in this process.

    Without its pub/sub listener: RQ's listener thread sleeps up to 60 s between polls, and a
    burst worker's teardown waits for it to wake, which made each call take up to a minute.
    The listener only carries commands (stop a job) that these tests never send.
    """
    from nurture import tasks
    from nurture.tasks.worker import SendWorker

    with app.app_context():
        worker = SendWorker([tasks.get_queue(app)], connection=tasks.get_redis(app))
        worker.subscribe = lambda: None  # type: ignore[method-assign]
        worker.work(burst=True)
