"""The OpenAPI 3.1 document of the JSON API, generated from the declared operations: paths
and methods from the routes, request bodies and query parameters from their pydantic models
(``model_json_schema``), statuses from what each route checks."""

from __future__ import annotations

import functools
from typing import Any

from flask import jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from nurture.core.inputs import MAX_ID
from nurture.web.api.routes import OPERATIONS, SIGNATURE, STATUS_TEXT, Operation, operation

REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "each bad field's path (steps[1].delay) and its problem",
                },
            },
        }
    },
}


def model_schemas(models: list[type[BaseModel]]) -> tuple[dict[type[BaseModel], Any], dict]:
    """Each model's schema (a $ref into components) and the components they need."""
    keyed = [(model, "validation") for model in models]
    refs, top = models_json_schema(keyed, ref_template=REF)
    return {model: refs[(model, "validation")] for model in models}, top.get("$defs", {})


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        }
        for name in op.path_params
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if name not in required:
                param["allowEmptyValue"] = True  # ?after= is a parameter left out
            params.append(param)
    if op.signed:
        params.append(
            {
                "name": SIGNATURE,
                "in": "header",
                "required": True,
                "description": "sha256=<hex HMAC-SHA256 of the raw body with the shared secret>",
                "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
            }
        )
    return params


def _responses(op: Operation) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    ok = {"type": "object"} if op.media == "application/json" else {"type": "string"}
    for status in op.statuses():
        if status < 400:
            content = {op.media: {"schema": ok}}
        else:
            content = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
        answers[str(status)] = {"description": STATUS_TEXT[status], "content": content}
    return answers


def _operation(op: Operation, refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "responses": _responses(op),
    }
    if op.role is None:
        doc["security"] = []
    else:
        doc["description"] = f"Needs a token of the {op.role} role or above."
    params = _parameters(op)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[op.body]}},
        }
    if op.form is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": refs[op.form]}},
        }
    return doc


@functools.cache
def openapi_document() -> dict[str, Any]:
    """What the API offers, for client generators and schemathesis."""
    # Query models too: the enums their parameters name are components.
    models = [m for op in OPERATIONS for m in (op.body, op.form, op.query) if m is not None]
    refs, components = model_schemas(list(dict.fromkeys(models)))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "nurture", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**components, "Error": _ERROR},
        },
    }


@operation("GET", "/openapi.json")
def openapi():
    """The OpenAPI document of this API."""
    return jsonify(openapi_document())
