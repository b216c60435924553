"""The OpenAPI document covers the referral, webhook, reply and promptness endpoints."""

from __future__ import annotations

import re

from flask import Flask

PREFIXES = ("/referrals", "/webhooks", "/replies", "/promptness", "/metrics")


def test_every_new_route_and_method_is_in_the_openapi_document(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").json["paths"]
    # The document names each id ({reply_id}); both sides are compared with ids as {id}.
    paths = {re.sub(r"\{\w+\}", "{id}", path): item for path, item in document.items()}
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:int:)?\w+>", "{id}", rule.rule.removeprefix("/api/v1"))
        if rule.rule.startswith("/api/v1") and path.startswith(PREFIXES):
            routes.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    assert len(routes) == 15
    for path, methods in routes.items():
        assert path in paths, path
        assert {m.lower() for m in methods} <= set(paths[path]), path
