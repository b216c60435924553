"""A JSON object body for the routes not yet declared with ``@operation`` (temporary)."""

from __future__ import annotations

from typing import Any

from flask import request

from nurture.web.api.auth import ApiError


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return data
