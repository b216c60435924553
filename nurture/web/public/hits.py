"""The open pixel (/o/<token>.gif) and the click redirect (/c/<token>), served ahead of Flask.

These two paths are most of the web tier's traffic, and each hit is small: check a signature,
store a row, answer a few bytes. Flask's request and app contexts, URL matching, response object
and session teardown would cost more than the hit itself, so ``TrackingHits`` wraps the app's
WSGI callable (``init_app``), answers these two paths itself, and hands everything else, and
every token that does not check out, to Flask unchanged (a forged or stale token gets Flask's own
404 page, as before). The hit is stored by this process's ``GroupCommitter`` before its answer
goes out.

What a candidate gets when the database cannot take the hit in time (``TRACKING_COMMIT_TIMEOUT``,
2 s by default): the pixel all the same, and the redirect to the link all the same. A tracking
outage must not break the mail or the link the candidate clicked, and a retry on the request's
own thread would only make them wait longer on the database that just failed (the committer has
already retried it until the deadline). Such an answer carries ``X-Nurture-Recorded: no``, is
logged, and counts as not recorded in ``count_hit``: only answers without that header say the hit
is stored.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, current_app, has_app_context
from markupsafe import escape
from sqlalchemy.pool import SingletonThreadPool, StaticPool
from werkzeug.urls import iri_to_uri

from nurture.core.feedback.tracking import Hit, click_hit, open_hit
from nurture.core.tokens import BadToken, Tokens
from nurture.extensions import db
from nurture.observability.metrics import metrics
from nurture.runtime import clock
from nurture.web.public.committer import GroupCommitter, Outcome

log = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NOT_RECORDED = ("X-Nurture-Recorded", "no")
_PIXEL_HEADERS = [
    ("Content-Type", "image/gif"),
    ("Content-Length", str(len(PIXEL))),
    ("Cache-Control", "no-store, private"),
]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def count_hit(kind: str, outcome: str) -> None:
    """The one place every tracking hit is counted, once, whatever became of it.

    ``kind`` is "open" or "click"; ``outcome`` is "human" or "machine" (stored), "not recorded"
    (answered, but the database did not take it), "no message" or "bad token" (a 404): the
    ``nurture_tracking_hits_total`` series of /metrics.
    """
    counter = _HIT_COUNTERS.get((kind, outcome))
    if counter is None:
        counter = _HIT_COUNTERS[kind, outcome] = metrics().tracking_hits.labels(kind, outcome)
    counter.inc()


# The counter of each (kind, outcome), looked up once per process rather than once per hit.
_HIT_COUNTERS: dict[tuple[str, str], Any] = {}


def pixel(recorded: bool = True) -> tuple[str, list[tuple[str, str]], bytes]:
    """The open pixel's answer: a transparent GIF that no cache keeps."""
    return "200 OK", [*_PIXEL_HEADERS, *(() if recorded else (NOT_RECORDED,))], PIXEL


def redirect(url: str, recorded: bool = True) -> tuple[str, list[tuple[str, str]], bytes]:
    """The click's answer: a 302 to ``url`` (the link the token carries), as Flask's redirect."""
    html_location = escape(url)
    body = (
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n"
        "<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: "
        f'<a href="{html_location}">{html_location}</a>. If not, click the link.\n'
    ).encode()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Location", url),
    ]
    return "302 FOUND", headers + ([] if recorded else [NOT_RECORDED]), body


def _location(url: str) -> str:
    """``url`` as a Location header value; BadToken for one no header can carry."""
    if not url.isascii():
        url = iri_to_uri(url)
    if any(ord(char) < 32 or char == "\x7f" for char in url):  # a header split, never sent
        raise BadToken("click")
    return url


class TrackingHits:
    """WSGI middleware: /o/<token>.gif and /c/<token> answered here, the rest by ``wsgi_app``."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self.clock = clock(app)
        self._committer: GroupCommitter | None = None
        self._made = threading.Lock()

    @property
    def committer(self) -> GroupCommitter:
        """This process's committer, made on the first hit (the engine needs the app)."""
        with self._made:
            if self._committer is None:
                with self.app.app_context():
                    engine = db.engine
                # SQLite in memory is one connection: it cannot be lent to another thread.
                shared = isinstance(engine.pool, StaticPool | SingletonThreadPool)
                self._committer = GroupCommitter(
                    engine,
                    timeout=float(self.app.config["TRACKING_COMMIT_TIMEOUT"]),
                    group=bool(self.app.config["TRACKING_GROUP_COMMIT"]) and not shared,
                )
            return self._committer

    def close(self) -> None:
        """Stop this process's committer (it starts again on the next hit)."""
        with self._made:
            if self._committer is not None:
                self._committer.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/o/") and path.endswith(".gif"):
            kind, token = "open", path[3:-4]
        elif path.startswith("/c/"):
            kind, token = "click", path[3:]
        else:
            return self.wsgi_app(environ, start_response)
        if not token or "/" in token or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)  # Flask's 404 (or 405), as before
        user_agent = environ.get("HTTP_USER_AGENT", "")
        tokens = Tokens.from_config(self.app.config)
        try:
            if kind == "open":
                hit: Hit = open_hit(tokens, token, user_agent, self.clock.now())
            else:
                hit = click_hit(tokens, token, user_agent, self.clock.now())
                location = _location(hit.url)
        except BadToken:
            count_hit(kind, "bad token")
            return self.wsgi_app(environ, start_response)
        # A request made inside this app's context (the test client of a test that holds one)
        # joins that context's session and commits it, as Flask's own views would; a request
        # from a server thread has no context and goes through the committer.
        in_context = has_app_context() and current_app._get_current_object() is self.app  # type: ignore[attr-defined]
        outcome = self.committer.record(hit, db.session() if in_context else None)
        count_hit(kind, outcome.value)
        if outcome is Outcome.NO_MESSAGE:
            return self.wsgi_app(environ, start_response)
        if not outcome.recorded:
            log.warning("tracking: %s of message %d served unrecorded", kind, hit.message_id)
        status, headers, body = (
            pixel(outcome.recorded) if kind == "open" else redirect(location, outcome.recorded)
        )
        start_response(status, headers)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def init_app(app: Flask) -> None:
    """Serve the open pixel and the click redirect ahead of the app's other routes."""
    app.wsgi_app = TrackingHits(app, app.wsgi_app)  # type: ignore[method-assign]
