"""``nurture import FILE.csv``: import candidates from the command line and print the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from nurture import runtime
from nurture.core import csvfiles
from nurture.extensions import db


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tag", "tags", multiple=True, help="Add this tag to every candidate (repeatable).")
@click.option("--dry-run", is_flag=True, help="Check every row, print the report, write nothing.")
@click.option(
    "--map",
    "overrides",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Import a column as this field (repeatable); FIELD '' ignores the column.",
)
@click.option(
    "--ignore-unknown",
    is_flag=True,
    help="Ignore unrecognised columns instead of keeping them as custom attributes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def import_command(
    file: Path,
    tags: tuple[str, ...],
    dry_run: bool,
    overrides: tuple[str, ...],
    ignore_unknown: bool,
    as_json: bool,
) -> None:
    """Import candidates from a CSV file (header line, email column) and print the report."""
    from nurture.core.errors import ValidationError
    from nurture.workflows import imports as import_service

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = runtime.clock(app).now()
    with file.open("rb") as handle:
        data = handle.read(csvfiles.MAX_BYTES + 1)
    try:
        csv_file = import_service.read_csv(data)
        job = import_service.new_import(
            csv_file,
            file.name,
            now,
            mapping=_overrides(overrides) or None,
            tags=import_service.clean_tags(list(tags)),
            unknown=import_service.IGNORE if ignore_unknown else import_service.ATTRIBUTE,
        )
        if dry_run:
            report = import_service.dry_run(db.session, job).as_dict()
        else:
            import_service.start(job)
    except ValidationError as exc:
        db.session.rollback()
        raise click.ClickException(
            "; ".join(f"{field}: {problem}" for field, problem in exc.fields.items()) or exc.message
        ) from None
    if not dry_run:
        db.session.add(job)
        db.session.commit()
        job = import_service.run_import(
            db.session, job.id, now, batch=int(app.config.get("IMPORT_BATCH_SIZE", 500))
        )
        report = import_service.import_report(job)
    if as_json:
        click.echo(
            json.dumps({**report, "mapping": job.mapping, "notes": csv_file.notes}, indent=2)
        )
        return
    _print(file.name, csv_file.notes, job.mapping, report, dry_run)
    if report.get("status") == "failed":
        raise click.ClickException("the import stopped before the end")


def _overrides(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not COLUMN=FIELD", param_hint="--map")
        mapping[column.strip()] = target.strip()
    return mapping


def _print(
    name: str, notes: list[str], mapping: dict[str, str], report: dict[str, Any], dry_run: bool
) -> None:
    for note in notes:
        click.echo(f"note: {note}", err=True)
    mapped = ", ".join(f"{c} → {t or '(ignored)'}" for c, t in mapping.items())
    click.echo(f"{name}: {report['total_rows']} rows; columns: {mapped}")
    if dry_run:
        click.echo(
            f"dry run (nothing written): would create {report['created']}, "
            f"would update {report['updated']}, rejected {report['rejected_count']}"
        )
    else:
        click.echo(
            f"created {report['created']}, updated {report['updated']}, "
            f"rejected {report['rejected_count']}"
        )
    for problem in report["rejected"]:
        line = problem["line"] if problem["line"] is not None else "-"
        click.echo(f"  line {line}  {problem['field'] or '(line)'}: {problem['reason']}")
