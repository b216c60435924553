"""What every response and every request of the web app gets, whatever the view: security
headers, a request size limit, ids that are bounded integers, secure cookies behind https and no
version banner. ``init_app`` wires it; views need not remember any of it.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from werkzeug.routing import IntegerConverter
from werkzeug.serving import WSGIRequestHandler

# Ids are INTEGER columns (32-bit on PostgreSQL): a larger number can name no row, so the URL
# does not match (404) instead of reaching the database as an overflow (500).
MAX_ID = 2**31 - 1

# The short public paths of candidates' mail; their tokens are in the URL.
PUBLIC_PREFIXES = ("/o/", "/c/", "/u/", "/p/", "/r/", "/k/")


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` in every route: 0 to ``MAX_ID`` unless the route says otherwise."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


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
        "style-src 'unsafe-inline'",
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
    app.after_request(lambda response: _headers(app, response))
