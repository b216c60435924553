"""What every response and every request of the web app gets, whatever the view: security
headers, a request size limit, ids that are bounded integers, secure cookies behind https and no
version banner. ``init_app`` wires it; views need not remember any of it.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, request
from werkzeug.routing import IntegerConverter
from werkzeug.serving import WSGIRequestHandler

from nurture.models.base import MAX_ID

# Ids are INTEGER columns: a larger number can name no row, so the URL does not match (404)
# instead of reaching the database as an overflow (500).

# The short public paths of candidates' mail; their tokens are in the URL.
PUBLIC_PREFIXES = ("/o/", "/c/", "/u/", "/p/", "/r/", "/k/", "/f/")


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` in every route: 0 to ``MAX_ID`` unless the route says otherwise.

    The bound is in the pattern too, not only checked after matching: Werkzeug answers a path
    that matches a route's pattern with another method 405, and a number no row can have
    names no resource (404), whatever the method.
    """

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        bounded = "max" not in kwargs and len(args) < 3 and not kwargs.get("signed")
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)
        if bounded:
            self.regex = up_to(MAX_ID)


def up_to(limit: int) -> str:
    """A regular expression for the whole numbers from 0 to ``limit`` (leading zeros aside)."""
    digits = str(limit)
    options = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for position, digit in enumerate(digits):
        lowest = 1 if position == 0 and len(digits) > 1 else 0
        if int(digit) > lowest:
            rest = len(digits) - position - 1
            options.append(
                f"{digits[:position]}[{lowest}-{int(digit) - 1}]"
                + (rf"\d{{{rest}}}" if rest else "")
            )
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's development server without its ``Werkzeug/x Python/y`` banner."""

    def version_string(self) -> str:
        """``Server: nurture``: nothing an attacker could match to a known bug."""
        return "nurture"


def csp_nonce() -> str:
    """This response's script nonce (``<script nonce="{{ csp_nonce() }}">``)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def _admin_policy(base_origin: str) -> str:
    # Inline styles stay allowed: the mail previews are srcdoc frames, which inherit this
    # policy, and mail is styled inline by nature. Scripts need this response's nonce.
    images = " ".join(dict.fromkeys(["'self'", "data:", "https:", base_origin]))
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{csp_nonce()}'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src {images}",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


PUBLIC_POLICY = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
STRICT_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def _headers(app: Flask, response: Response) -> Response:
    """The security headers of every response."""
    path = request.path
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if path.startswith(PUBLIC_PREFIXES):
        # The token in the URL is the candidate's key: never tell another site about it.
        headers["Referrer-Policy"] = "no-referrer"
        headers.setdefault("Content-Security-Policy", PUBLIC_POLICY)
    else:
        headers.setdefault("Referrer-Policy", "same-origin")
        if path.startswith("/admin") and response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", _admin_policy(app.config["_BASE_ORIGIN"]))
        else:
            headers.setdefault("Content-Security-Policy", STRICT_POLICY)
    if path.startswith(("/admin", "/api/")) and not path.startswith("/admin/static/"):
        # Candidates' data: not for the browser's disk cache or a shared proxy.
        headers.setdefault("Cache-Control", "no-store")
    if app.config["_HTTPS"]:
        headers.setdefault("Strict-Transport-Security", f"max-age={app.config['HSTS_MAX_AGE']}")
    return response


def _refuse_big_bodies() -> None:
    """A body announced over the limit is refused before any view, login or CSRF check reads
    it (Flask would refuse it too, but only once something reads the body)."""
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        abort(413)


def init_app(app: Flask) -> None:
    """Headers, limits, bounded ids and cookie flags for ``app``; call before blueprints."""
    app.url_map.converters["int"] = BoundedIntConverter
    base = urlsplit(str(app.config.get("BASE_URL") or ""))
    https = base.scheme == "https"
    app.config["_HTTPS"] = https
    app.config["_BASE_ORIGIN"] = f"{base.scheme}://{base.netloc}" if base.netloc else "'self'"
    app.config.setdefault("HSTS_MAX_AGE", 31536000)
    if https:
        # Behind https the session cookie (which holds the CSRF token too) never travels in clear.
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
        app.config.setdefault("PREFERRED_URL_SCHEME", "https")
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Client addresses (login throttling) and the scheme come from the proxies' headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.before_request(_refuse_big_bodies)
    app.after_request(lambda response: _headers(app, response))
