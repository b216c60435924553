"""The OpenAPI 3.1 document of the JSON API."""

from __future__ import annotations

from typing import Any

from nurture.core.campaigns.service import EXIT_ON, TOPICS
from nurture.models.campaigns import DEFAULT_EXIT_ON, Reentry

_ERROR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str,
    ok: str = "200",
    body: str | None = None,
    auth: bool = True,
    params: list[str] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "4XX": {"description": "Error", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if not auth:
        operation["security"] = []
    if params:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "integer"}}
            for p in params
        ]
    return operation


def openapi_document() -> dict[str, Any]:
    """What the API offers, for client generators and schemathesis."""
    string = {"type": "string"}
    strings = {"type": "array", "items": string}
    return {
        "openapi": "3.1.0",
        "info": {"title": "nurture", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/candidates": {
                "post": _op("Create or update a candidate by email", "201", "CandidateIn")
            },
            "/candidates/{id}": {
                "get": _op("A candidate with enrolments and timeline", params=["id"]),
                "delete": _op("Erase a candidate", params=["id"]),
            },
            "/candidates/import": {
                "post": {
                    **_op("Import candidates from a CSV file (202 and a status URL when large)"),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "mapping": string,
                                        "tags": string,
                                        "dry_run": {"type": "boolean"},
                                        "unknown": {"enum": ["attribute", "ignore"]},
                                    },
                                }
                            }
                        },
                    },
                }
            },
            "/imports/{id}": {"get": _op("Progress and report of an import", params=["id"])},
            "/campaigns": {"post": _op("Create a campaign", "201", "CampaignIn")},
            "/campaigns/{id}": {"get": _op("A campaign", params=["id"])},
            "/campaigns/{id}/activate": {"post": _op("Activate a campaign", params=["id"])},
            "/campaigns/{id}/pause": {"post": _op("Pause a campaign", params=["id"])},
            "/campaigns/{id}/stats": {"get": _op("Per-step statistics", params=["id"])},
            "/bounces": {
                "post": _op(
                    "Bounces and complaints reported over HTTP, signed in X-Nurture-Signature",
                    auth=False,
                )
            },
            "/broadcasts": {
                "post": _op("Create (and schedule) a broadcast to a segment or tag", "201")
            },
            "/broadcasts/{id}": {"get": _op("A broadcast and its progress", params=["id"])},
            "/jobs": {"post": _op("Create a job opening and propose matching candidates", "201")},
            "/jobs/{id}": {"get": _op("A job opening and its match counts", params=["id"])},
            "/jobs/{id}/matches": {
                "get": _op("Ranked matches with the reasons", params=["id"]),
                "post": _op("Add a candidate to the review list by email", params=["id"]),
            },
            "/jobs/{id}/matches/{candidate_id}/exclude": {
                "post": _op("Remove a candidate from the alert", params=["id", "candidate_id"])
            },
            "/jobs/{id}/matches/{candidate_id}/include": {
                "post": _op("Put a removed candidate back", params=["id", "candidate_id"])
            },
            "/jobs/{id}/approve": {
                "post": _op("Send the alert to the reviewed matches", params=["id"])
            },
            "/segments": {"post": _op("Create a segment from rules", "201")},
            "/segments/preview": {"post": _op("Count and sample for rules, unsaved")},
            "/segments/{id}": {"get": _op("A segment", params=["id"])},
            "/segments/{id}/count": {"get": _op("Live count of a segment", params=["id"])},
            "/segments/{id}/members": {"get": _op("A page of a segment's members", params=["id"])},
            "/suppressions": {
                "get": _op("Suppressed addresses counted by reason (stored as hashes only)"),
                "post": _op(
                    "Suppress addresses (an import from another tool); answers a report "
                    "of added, already suppressed and rejected lines",
                    body="SuppressionsIn",
                ),
            },
            "/suppressions/check": {
                "get": {
                    **_op("Whether an address is suppressed, why and since when"),
                    "parameters": [
                        {
                            "name": "email",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "format": "email"},
                        }
                    ],
                }
            },
            "/ats/events": {
                "post": _op(
                    "An ATS event, signed in X-Nurture-Signature", body="AtsEvent", auth=False
                )
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": string,
                                "message": string,
                                "fields": {"type": "object", "additionalProperties": string},
                            },
                        }
                    },
                },
                "CandidateIn": {
                    "type": "object",
                    "required": ["email"],
                    "properties": {
                        "email": {"type": "string", "format": "email"},
                        **{
                            name: string
                            for name in (
                                "first_name",
                                "last_name",
                                "timezone",
                                "location",
                                "role",
                                "stage",
                                "rejection_reason",
                                "strengths",
                                "source",
                                "recruiter_name",
                                "recruiter_email",
                            )
                        },
                        "skills": strings,
                        "tags": strings,
                        "consent": {
                            "type": "object",
                            "properties": {
                                "basis": string,
                                "source": string,
                                "at": {"type": "string", "format": "date-time"},
                            },
                        },
                        "attributes": {"type": "object"},
                    },
                },
                "CampaignIn": {
                    "type": "object",
                    "required": ["name", "steps"],
                    "properties": {
                        "name": string,
                        "kind": {"enum": ["drip", "broadcast", "job_alert"]},
                        "entry": {
                            "type": "object",
                            "properties": {
                                "ats_event": {"enum": ["candidate.rejected"]},
                                "tag": string,
                                "segment_id": {"type": "integer"},
                            },
                        },
                        "steps": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "delay": {"type": "string", "examples": ["P3D", "PT30S"]},
                                    "subject": string,
                                    "template": string,
                                    "html": string,
                                    "text": string,
                                    "condition": {
                                        "enum": [
                                            "",
                                            "previous_opened",
                                            "previous_not_opened",
                                            "previous_clicked",
                                        ]
                                    },
                                },
                            },
                        },
                        "send_window": {"type": "object"},
                        "exit_on": {
                            "type": "array",
                            "items": {"enum": list(EXIT_ON)},
                            "default": list(DEFAULT_EXIT_ON),
                            "description": "What ends a candidate's drip besides unsubscribes, "
                            "bounces and complaints, which always do.",
                        },
                        "reentry": {"enum": [r.value for r in Reentry], "default": "after_exit"},
                        "topic": {"enum": list(TOPICS)},
                        "sender": {
                            "type": "object",
                            "properties": {
                                "name": string,
                                "email": string,
                                "use_recruiter": {"type": "boolean"},
                            },
                        },
                    },
                },
                "SuppressionsIn": {
                    "type": "object",
                    "required": ["emails"],
                    "properties": {
                        "emails": {"type": "array", "minItems": 1, "items": string},
                        "reason": {
                            "enum": ["unsubscribed", "bounced", "complained", "manual"],
                            "default": "manual",
                        },
                    },
                },
                "AtsEvent": {
                    "type": "object",
                    "required": ["type", "candidate"],
                    "properties": {
                        "type": {
                            "enum": ["candidate.rejected", "candidate.hired", "candidate.reapplied"]
                        },
                        "candidate": {"$ref": "#/components/schemas/CandidateIn"},
                    },
                },
            },
        },
    }
