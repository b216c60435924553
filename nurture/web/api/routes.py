"""The API's operations, each declared once: method and path, who may call it (a role, or an
HMAC signature), the model of its body and of its query, the statuses it answers. The
decorator registers the view, checks the caller, validates the input with the declared model
and hands the view the result; the OpenAPI document (``openapi.py``) is generated from the
same declarations, so a body the document shows is the body the route validates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from nurture.core.errors import Conflict, ValidationError
from nurture.core.inputs import MAX_ID, NotAnObject, parse, parse_json
from nurture.extensions import csrf, db
from nurture.models import Role
from nurture.web.api.auth import ApiError, requires, signed_body

bp = Blueprint("api", __name__)
csrf.exempt(bp)  # bearer tokens and HMAC signatures, never cookies

SIGNATURE = "X-Nurture-Signature"
_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")

# What each status means in the document.
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted: a worker does the rest",
    400: "The body is not a JSON object",
    401: "No valid credentials",
    403: "The caller's role does not allow it",
    404: "No such resource",
    409: "The resource's state does not allow it",
    413: "The body is larger than the server accepts",
    422: "Some fields are not valid (each named in error.fields)",
    503: "Not configured, or a service it needs is unavailable",
}


@dataclass(frozen=True)
class Operation:
    """One route of the API as the document describes it."""

    method: str
    rule: str
    endpoint: str
    summary: str
    role: str | None = None
    # The configuration key of the HMAC secret that signs the body, for webhooks.
    signed: str | None = None
    body: type[BaseModel] | None = None
    # A multipart form (a file upload) rather than a JSON body.
    form: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    ok: tuple[int, ...] = (200,)
    errors: tuple[int, ...] = ()
    context: Callable[[], dict[str, Any]] | None = field(default=None, compare=False)
    # Problems under this part of the body are reported by the part's own field names.
    flatten: str = ""
    # The media type of a successful answer (errors are always JSON).
    media: str = "application/json"

    @property
    def path(self) -> str:
        """The OpenAPI path: ``/candidates/<int:candidate_id>`` → ``/candidates/{candidate_id}``."""
        return _PARAM.sub(lambda m: "{" + m[2] + "}", self.rule)

    @property
    def path_params(self) -> list[str]:
        """The names of the ids in the path."""
        return [m[2] for m in _PARAM.finditer(self.rule)]

    def statuses(self) -> list[int]:
        """Every status the route answers, as the document lists them."""
        found = set(self.ok) | set(self.errors)
        if self.role:
            found.add(401)
        if self.role and self.role != Role.VIEWER:
            found.add(403)  # every valid token has at least the viewer role
        if self.signed:
            found |= {401, 503}
        if self.path_params:
            found.add(404)
        if self.body or self.form:
            found |= {413, 422}
        if self.body:
            found.add(400)
        if self.query:
            found.add(422)
        return sorted(found)


OPERATIONS: list[Operation] = []


def operation(
    method: str,
    rule: str,
    *,
    role: str | None = None,
    signed: str | None = None,
    body: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    ok: tuple[int, ...] = (200,),
    errors: tuple[int, ...] = (),
    context: Callable[[], dict[str, Any]] | None = None,
    flatten: str = "",
    media: str = "application/json",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view as an operation: ``body=`` and ``query=`` reach it validated."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(
            method=method.upper(), rule=rule, endpoint=view.__name__,
            summary=(view.__doc__ or view.__name__).strip().splitlines()[0],
            role=role, signed=signed, body=body, form=form, query=query, ok=ok, errors=errors,
            context=context, flatten=flatten, media=media,
        )  # fmt: skip

        @functools.wraps(view)
        def handle(**kwargs: Any) -> Any:
            if any(isinstance(v, int) and v > MAX_ID for v in kwargs.values()):
                raise ApiError(404, "not_found", "no such id: ids are at most 2**63 - 1")
            if signed:
                _check_signature(signed)
            if op.body is not None:
                kwargs["body"] = _body(op)
            if op.form is not None:
                kwargs["form"] = _form(op.form)
            if op.query is not None:
                kwargs["query"] = _query(op.query)
            return view(**kwargs)

        guarded = requires(role)(handle) if role else handle
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=guarded, methods=[op.method])
        OPERATIONS.append(op)
        return guarded

    return decorate


def _body(op: Operation) -> Any:
    """The request's JSON body as the operation's model."""
    assert op.body is not None
    try:
        return parse_json(op.body, request.get_data(), context=op.context() if op.context else None)
    except NotAnObject:
        raise
    except ValidationError as exc:
        if not op.flatten:
            raise
        fields = {key.removeprefix(op.flatten): problem for key, problem in exc.fields.items()}
        raise ValidationError(exc.message, fields) from None


def _query(model: type[BaseModel]) -> Any:
    """The query string as ``model``; a parameter it does not declare is refused (a typo must
    not silently mean "no filter")."""
    unknown = sorted(set(request.args) - set(model.model_fields))
    if unknown:
        raise ValidationError(
            "some parameters are not known", dict.fromkeys(unknown, "is not a parameter here")
        )
    # An empty parameter (?after=) is one left out.
    return parse(model, {k: v for k, v in request.args.items() if v != ""})


def _form(model: type[BaseModel]) -> Any:
    """A multipart form as ``model``: repeated fields as lists, files by their field name."""
    values: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in request.form.lists()}
    return parse(model, {**values, **request.files.to_dict()})


def _check_signature(secret_key: str) -> None:
    """The body is signed with HMAC-SHA256 of the secret in ``secret_key``: 503 when unset.

    ``signed_body`` checks the body's size before a byte of it is read or hashed (413).
    """
    secret = current_app.config.get(secret_key)
    if not secret:
        raise ApiError(503, "not_configured", f"set NURTURE_{secret_key} to accept these requests")
    signed_body(secret)


# --- errors, always JSON under /api/ -----------------------------------------------------------


def error_answer(status: int, code: str, message: str, fields: dict[str, str] | None = None):
    """The one error shape: ``{"error": {"code", "message", "fields"}}``."""
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return jsonify(body), status


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    db.session.rollback()  # a refused request changes nothing, not even a token's last use
    return error_answer(exc.status, exc.code, exc.message, exc.fields)


@bp.errorhandler(NotAnObject)
def _not_an_object(exc: NotAnObject):
    db.session.rollback()
    return error_answer(400, "bad_request", exc.message)


@bp.errorhandler(ValidationError)
def _validation_error(exc: ValidationError):
    db.session.rollback()
    return error_answer(422, "invalid", exc.message, exc.fields)


@bp.errorhandler(Conflict)
def _conflict(exc: Conflict):
    db.session.rollback()
    return error_answer(409, "conflict", str(exc))


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    """Under /api/ every error is JSON, even a route that does not exist; its headers (the
    ``Allow`` of a 405) are kept."""
    if not request.path.startswith("/api/"):
        return exc
    db.session.rollback()
    answer, status = error_answer(
        exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or ""
    )
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            answer.headers[name] = value
    return answer, status
