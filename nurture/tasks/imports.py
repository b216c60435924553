"""The task that runs a CSV import, and how it is put on the queue."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app

from nurture import runtime
from nurture.extensions import db
from nurture.tasks import get_queue
from nurture.workflows.imports import import_report, run_import

IMPORT_TASK = "nurture.tasks.imports.run_import_task"


def run_import_task(import_id: int) -> dict:
    """Run the import with this id (resuming after its last committed batch); returns counts."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        upload = run_import(
            db.session,
            import_id,
            runtime.clock(app).now(),
            batch=int(app.config.get("IMPORT_BATCH_SIZE", 500)),
            clock=runtime.clock(app).now,
        )
        # The import's row keeps the rejected rows; RQ's result keeps only the counts.
        return import_report(upload, with_rejected=False)
    finally:
        db.session.remove()


# Tasks queued before the rename name the old function; Redis may still hold some.
run_import_job = run_import_task


def enqueue_import(import_id: int, app: Flask | None = None) -> None:
    """Hand an import to the workers."""
    get_queue(app).enqueue(
        IMPORT_TASK,
        import_id,
        job_timeout=int(timedelta(hours=1).total_seconds()),
        result_ttl=300,
        failure_ttl=int(timedelta(days=7).total_seconds()),
    )
