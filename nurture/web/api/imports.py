"""JSON API: CSV import of candidates (multipart upload → report)."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, jsonify, request, url_for

from nurture import runtime
from nurture.core import csvfiles
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import ImportStatus, Role
from nurture.tasks.imports import enqueue_import
from nurture.web.api.auth import ApiError, requires
from nurture.web.api.views import bp
from nurture.workflows import imports as import_service

# Files up to this many rows (a few seconds of work) are imported during the request;
# larger ones go to a worker.
SYNC_MAX_ROWS = 1000
_TRUE = {"1", "true", "yes", "on"}
_RESERVED = {"file", "tags", "mapping", "unknown"}


def _mapping() -> dict[str, str] | None:
    raw = request.form.get("mapping")
    if not raw:
        return None
    try:
        mapping = json.loads(raw)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise ValidationError(
            "mapping is not valid", {"mapping": "must be a JSON object of CSV column → field"}
        )
    return mapping


def _tags() -> list[str]:
    values = request.form.getlist("tags")
    if len(values) == 1 and values[0].lstrip().startswith("["):
        try:
            parsed = json.loads(values[0])
        except ValueError:
            raise ValidationError("tags are not valid", {"tags": "not valid JSON"}) from None
        return import_service.clean_tags(parsed if isinstance(parsed, list) else [parsed])
    return import_service.clean_tags(",".join(values))


def _unknown() -> str:
    value = request.form.get("unknown", "attribute")
    if value not in ("attribute", "ignore"):
        raise ValidationError("unknown is not valid", {"unknown": "must be attribute or ignore"})
    return import_service.ATTRIBUTE if value == "attribute" else import_service.IGNORE


def _keyed(exc: ValidationError) -> ValidationError:
    """Problems with a column are reported as ``mapping.<column>``."""
    fields = {k if k in _RESERVED else f"mapping.{k}": v for k, v in exc.fields.items()}
    return ValidationError(exc.message, fields)


@bp.post("/candidates/import")
@requires(Role.EDITOR)
def import_candidates():
    """Import a CSV of candidates; small files at once (200), large ones by a worker (202)."""
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError("send the CSV as the multipart field 'file'", {"file": "required"})
    dry_run = request.values.get("dry_run", "").strip().lower() in _TRUE
    try:
        csv_file = import_service.read_csv(upload.stream.read(csvfiles.MAX_BYTES + 1))
        job = import_service.new_import(
            csv_file,
            upload.filename or "upload.csv",
            runtime.now(),
            mapping=_mapping(),
            tags=_tags(),
            unknown=_unknown(),
            created_by_id=g.api_user.id,
        )
        if dry_run:
            # The job is never added to the session: a dry run writes nothing at all.
            report = import_service.dry_run(db.session, job)
            return jsonify({**report.as_dict(), "mapping": job.mapping, "notes": csv_file.notes})
        import_service.start(job)
    except ValidationError as exc:
        raise _keyed(exc) from None
    db.session.add(job)
    db.session.commit()
    extra: dict[str, Any] = {"mapping": job.mapping, "notes": csv_file.notes}
    if job.total_rows > SYNC_MAX_ROWS:
        try:
            enqueue_import(job.id)
        except Exception:  # noqa: BLE001 - Redis down: a clear 503, the upload kept for a retry
            current_app.logger.exception("could not enqueue import %s", job.id)
            job.status = ImportStatus.UPLOADED
            db.session.commit()
            raise ApiError(503, "queue_unavailable", "the job queue cannot be reached") from None
        body = import_service.import_report(job, with_rejected=False)
        body["status_url"] = url_for("api.get_import", import_id=job.id)
        return jsonify({**body, **extra}), 202
    job = import_service.run_import(
        db.session,
        job.id,
        runtime.now(),
        batch=int(current_app.config.get("IMPORT_BATCH_SIZE", 500)),
    )
    return jsonify({**import_service.import_report(job), **extra, "dry_run": False})


@bp.get("/imports/<int:import_id>")
@requires(Role.EDITOR)
def get_import(import_id: int):
    """The progress and report of an import."""
    job = import_service.get_import(db.session, import_id, with_content=False)
    if job is None:
        raise ApiError(404, "not_found", f"no import {import_id}")
    return jsonify(import_service.import_report(job))
