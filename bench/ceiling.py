"""The ceiling of bench/tracking.py: the smallest WSGI app, served by the same gunicorn setup.

It answers the open pixel's bytes and headers on /o/ and a bare redirect on /c/, touching no
database and checking no token: what gunicorn, the loopback and the load generator cost alone.
"""

from __future__ import annotations

import base64

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_PIXEL = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL))),
          ("Cache-Control", "no-store, private")]  # fmt: skip
_REDIRECT = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "0"),
             ("Location", "https://careers.example.com/")]  # fmt: skip


def app(environ, start_response):  # noqa: ANN001, ANN201 - a WSGI callable
    """Answer at once: 302 on /c/, the pixel anywhere else."""
    if environ.get("PATH_INFO", "").startswith("/c/"):
        start_response("302 FOUND", _REDIRECT)
        return [b""]
    start_response("200 OK", _PIXEL)
    return [PIXEL]
