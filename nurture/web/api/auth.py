"""Bearer-token authentication and roles for the JSON API."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from flask import current_app, g, request

from nurture import runtime
from nurture.core.accounts.users import user_for_token
from nurture.extensions import db


class ApiError(Exception):
    """An error the API answers as JSON with a 4xx status."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}


def signed_body(secret: str) -> bytes:
    """A webhook's raw body, once its size and its ``X-Nurture-Signature`` check out.

    The size is checked first, from Content-Length, before a byte is read or hashed: a webhook
    is open to anyone, and a big body must cost us nothing (413).
    """
    request.max_content_length = int(current_app.config["WEBHOOK_MAX_CONTENT_LENGTH"])
    body = request.get_data(cache=True)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Nurture-Signature", "")):
        raise ApiError(401, "bad_signature", "X-Nurture-Signature does not match the body")
    return body


def requires(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Only callers with a valid bearer token of at least ``role`` get through."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
            now = runtime.now()
            user = user_for_token(db.session, token.strip(), now)
            if user is None:
                raise ApiError(401, "unauthorized", "the token is not valid")
            if not user.has_role(role):
                raise ApiError(403, "forbidden", f"this needs the {role} role")
            g.api_user = user
            return view(*args, **kwargs)

        return wrapped

    return decorator
