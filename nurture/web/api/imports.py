"""JSON API: CSV import of candidates (multipart upload → report)."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, url_for
from werkzeug.datastructures import FileStorage

from nurture import runtime
from nurture.core import csvfiles
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import ImportStatus, Role
from nurture.tasks.imports import enqueue_import
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation
from nurture.workflows import imports as import_service
from nurture.workflows.imports import ImportForm

# Files up to this many rows (a few seconds of work) are imported during the request;
# larger ones go to a worker.
SYNC_MAX_ROWS = 1000
_RESERVED = {"file", "tags", "mapping", "unknown"}


def _keyed(exc: ValidationError) -> ValidationError:
    """Problems with a column are reported as ``mapping.<column>``."""
    fields = {k if k in _RESERVED else f"mapping.{k}": v for k, v in exc.fields.items()}
    return ValidationError(exc.message, fields)


@operation(
    "POST", "/candidates/import", role=Role.EDITOR, form=ImportForm, ok=(200, 202), errors=(503,)
)
def import_candidates(form: ImportForm):
    """Import a CSV of candidates; small files at once (200), large ones by a worker (202)."""
    upload = form.file
    if not isinstance(upload, FileStorage):
        raise ValidationError("send the CSV as the multipart field 'file'", {"file": "a file"})
    unknown = import_service.ATTRIBUTE if form.unknown == "attribute" else import_service.IGNORE
    try:
        csv_file = import_service.read_csv(upload.stream.read(csvfiles.MAX_BYTES + 1))
        job = import_service.new_import(
            csv_file,
            upload.filename or "upload.csv",
            runtime.now(),
            mapping=form.mapping or None,
            tags=form.tags,
            unknown=unknown,
            created_by_id=g.api_user.id,
        )
        if form.dry_run:
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


@operation("GET", "/imports/<int:import_id>", role=Role.EDITOR)
def get_import(import_id: int):
    """The progress and report of an import."""
    job = import_service.get_import(db.session, import_id, with_content=False)
    if job is None:
        raise ApiError(404, "not_found", f"no import {import_id}")
    return jsonify(import_service.import_report(job))
