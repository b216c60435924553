"""The job that runs a CSV import, and how it is put on the queue."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app

from nurture import runtime
from nurture.extensions import db
from nurture.tasks import get_queue
from nurture.workflows.imports import job_report, run_import

IMPORT_JOB = "nurture.tasks.imports.run_import_job"


def run_import_job(import_id: int) -> dict:
    """Run the import with this id (resuming after its last committed batch); returns counts."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        job = run_import(
            db.session,
            import_id,
            runtime.clock(app).now(),
            batch=int(app.config.get("IMPORT_BATCH_SIZE", 500)),
            clock=runtime.clock(app).now,
        )
        # The job row keeps the rejected rows; RQ's result keeps only the counts.
        return job_report(job, with_rejected=False)
    finally:
        db.session.remove()


def enqueue_import(import_id: int, app: Flask | None = None) -> None:
    """Hand an import to the workers."""
    get_queue(app).enqueue(
        IMPORT_JOB,
        import_id,
        job_timeout=int(timedelta(hours=1).total_seconds()),
        result_ttl=300,
        failure_ttl=int(timedelta(days=7).total_seconds()),
    )
