"""Admin pages: CSV import of candidates — upload, column mapping, dry run, progress, report."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from sqlalchemy import select
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length

from nurture import runtime
from nurture.core import csvfiles
from nurture.core.audience import search
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import Candidate, Import, ImportStatus, Role, Tag
from nurture.tasks.imports import enqueue_import
from nurture.web.admin.access import role_required
from nurture.workflows import imports as import_service

bp = Blueprint("imports", __name__, template_folder="templates")

# The imported candidates listed (with a tick box each) under an import's report.
IMPORTED_SHOWN = 200

TARGET_CHOICES = [SelectChoice(value, label) for value, label in import_service.FIELDS.items()]


class UploadForm(FlaskForm):
    """Choose a CSV file."""

    file = FileField(
        "CSV file",
        validators=[
            FileRequired("Choose a CSV file to upload."),
            FileAllowed(
                ["csv", "txt"],
                "Upload a .csv or .txt file. In a spreadsheet: File → Save as → CSV UTF-8.",
            ),
        ],
    )
    unknown = SelectField(
        "Columns nurture does not recognise",
        choices=[
            SelectChoice(import_service.ATTRIBUTE, "Keep them as custom attributes"),
            SelectChoice(import_service.IGNORE, "Ignore them"),
        ],
        default=import_service.ATTRIBUTE,
    )


class ConfirmForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


def mapping_form(
    header: list[str], mapping: dict[str, str], tags: list[str], formdata: Any = None
) -> FlaskForm:
    """A form with one select per CSV column (pre-filled from ``mapping``) and the tags."""

    class MappingForm(FlaskForm):
        tags = StringField("Tags to add to every candidate", validators=[Length(max=1000)])

    for index, column in enumerate(header):
        setattr(
            MappingForm,
            f"col{index}",
            SelectField(column, choices=TARGET_CHOICES, default=mapping.get(column, "")),
        )
    form = MappingForm(formdata=formdata)
    if formdata is None:
        form.tags.data = ", ".join(tags)
    form.columns = [(column, form[f"col{index}"]) for index, column in enumerate(header)]
    return form


def _sentence(text: str) -> str:
    """A service message as a sentence for a flash: capital first letter, final full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _import_or_404(import_id: int, with_content: bool = True) -> Import:
    """The import with this id, or 404."""
    job = import_service.get_import(db.session, import_id, with_content=with_content)
    if job is None:
        abort(404)
    return job


@bp.get("")
@role_required(Role.EDITOR)
def imports():
    """Past imports with their status and counts."""
    return render_template(
        "admin/imports/index.html", jobs=import_service.recent_imports(db.session)
    )


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def import_upload():
    """Upload a CSV; it is checked and stored, nothing is imported yet."""
    form = UploadForm()
    if request.method == "GET":
        return render_template("admin/imports/upload.html", form=form)
    if not form.validate_on_submit():
        return render_template("admin/imports/upload.html", form=form), 400
    upload = form.file.data
    # One byte over the limit is enough to refuse it, without reading a huge file whole.
    data = upload.stream.read(csvfiles.MAX_BYTES + 1)
    try:
        job, notes = import_service.create_import(
            db.session,
            data,
            upload.filename or "upload.csv",
            runtime.now(),
            created_by_id=current_user.id,
            unknown=form.unknown.data,
        )
    except ValidationError as exc:
        db.session.rollback()
        form.file.errors = [exc.fields.get("file", exc.message)]
        return render_template("admin/imports/upload.html", form=form), 400
    db.session.commit()
    for note in notes:
        flash(note, "info")
    return redirect(url_for("admin.imports.import_mapping", import_id=job.id))


@bp.route("/<int:import_id>/mapping", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def import_mapping(import_id: int):
    """Choose a candidate field for each column and the tags; see the first rows as mapped."""
    job = _import_or_404(import_id)
    if job.status != ImportStatus.UPLOADED:
        return redirect(url_for("admin.imports.import_detail", import_id=job.id))
    header = import_service.header_of(job)
    if request.method == "GET":
        form = mapping_form(header, job.mapping, job.tags)
        return _mapping_page(job, form, job)
    form = mapping_form(header, job.mapping, job.tags, formdata=request.form)
    if not form.validate_on_submit():
        return _mapping_page(job, form, job, status=400)
    mapping = {column: select.data for column, select in form.columns}
    try:
        import_service.set_mapping(job, mapping, form.tags.data)
    except ValidationError as exc:
        for column, select in form.columns:
            if column in exc.fields:
                select.errors = [exc.fields[column]]
        if "tags" in exc.fields:
            form.tags.errors = [exc.fields["tags"]]
        # The preview follows what was chosen, even though nothing is saved.
        draft = Import(content=job.content, mapping=mapping, tags=job.tags)
        return _mapping_page(job, form, draft, error=exc.fields.get("mapping"), status=422)
    db.session.commit()
    if request.form.get("action") == "check":
        return redirect(url_for("admin.imports.import_check", import_id=job.id))
    flash("Mapping saved; the preview below follows it.", "success")
    return redirect(url_for("admin.imports.import_mapping", import_id=job.id))


def _mapping_page(
    job: Import, form: FlaskForm, source: Import, error: str | None = None, status: int = 200
):
    """Render the mapping page with the preview of ``source`` (the job or an unsaved draft)."""
    rows = import_service.preview(source, 5)
    chosen = {select.data for _, select in form.columns} - {import_service.IGNORE}
    order = list(import_service.FIELDS)
    targets = sorted((t for t in chosen if t in order), key=order.index)
    return render_template(
        "admin/imports/mapping.html",
        job=job,
        form=form,
        samples=import_service.column_samples(job),
        rows=rows,
        targets=targets,
        source_tags=source.tags,
        labels=import_service.FIELDS,
        attribute_key=import_service.attribute_key,
        error=error,
    ), status


@bp.get("/<int:import_id>/check")
@role_required(Role.EDITOR)
def import_check(import_id: int):
    """The dry run: every row checked as the import will, nothing written."""
    job = _import_or_404(import_id)
    if job.status != ImportStatus.UPLOADED:
        return redirect(url_for("admin.imports.import_detail", import_id=job.id))
    try:
        report = import_service.dry_run(db.session, job)
    except ValidationError as exc:
        flash(_sentence(next(iter(exc.fields.values()), exc.message)), "error")
        return redirect(url_for("admin.imports.import_mapping", import_id=job.id))
    return render_template("admin/imports/check.html", job=job, report=report, form=ConfirmForm())


@bp.post("/<int:import_id>/start")
@role_required(Role.EDITOR)
def import_start(import_id: int):
    """Start the import: a worker writes the good rows in batches."""
    job = _import_or_404(import_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        import_service.start(job)
    except ValidationError as exc:
        db.session.rollback()
        flash(_sentence(exc.message), "error")
        return redirect(url_for("admin.imports.import_detail", import_id=job.id))
    db.session.commit()
    try:
        enqueue_import(job.id)
    except Exception:  # noqa: BLE001 - Redis down: say so, and leave the import to retry
        current_app.logger.exception("could not enqueue import %s", job.id)
        job.status = ImportStatus.UPLOADED
        db.session.commit()
        flash(
            "The job queue cannot be reached (is Redis running?). Nothing was imported; "
            "try again in a moment.",
            "error",
        )
        return redirect(url_for("admin.imports.import_check", import_id=job.id))
    return redirect(url_for("admin.imports.import_detail", import_id=job.id))


@bp.get("/<int:import_id>")
@role_required(Role.EDITOR)
def import_detail(import_id: int):
    """Progress of an import and, when it is done, its report."""
    job = _import_or_404(import_id, with_content=False)
    if job.status == ImportStatus.UPLOADED:
        return redirect(url_for("admin.imports.import_mapping", import_id=job.id))
    candidates_url = (
        url_for("admin.candidates.candidates")
        if "admin.candidates.candidates" in current_app.view_functions
        else None
    )
    imported = 0
    campaigns: list = []
    rows: list = []
    if job.status in (ImportStatus.DONE, ImportStatus.FAILED) and (
        job.created_count or job.updated_count
    ):
        imported = job.created_count + job.updated_count
        campaigns = [c for c in search.active_campaigns(db.session) if c.kind == "drip"]
        rows = db.session.scalars(
            select(Candidate)
            .where(Candidate.id.in_(import_service.imported_ids(job)))
            .order_by(Candidate.id)
            .limit(IMPORTED_SHOWN)
        ).all()
    return render_template(
        "admin/imports/detail.html",
        job=job,
        candidates_url=candidates_url,
        report=import_service.import_report(job),
        imported=imported,
        imported_rows=rows,
        imported_shown=IMPORTED_SHOWN,
        campaigns=campaigns,
        tags=db.session.scalars(select(Tag.name).order_by(Tag.name).limit(500)).all(),
    )


@bp.get("/<int:import_id>/rejected.csv")
@role_required(Role.EDITOR)
def import_rejected(import_id: int):
    """The rejected rows as CSV, with their line and problem: fix them, upload them again."""
    job = _import_or_404(import_id)
    stem = (job.filename or "import").rsplit(".", 1)[0][:80] or "import"
    return Response(
        stream_with_context(search.csv_lines(_neutral(import_service.rejected_rows(job)))),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{_safe(stem)}-rejected.csv"',
            "Cache-Control": "no-store",
        },
    )


def _neutral(rows):  # noqa: ANN001, ANN202 - rows of cells
    """Cells a spreadsheet would run as formulas are made inert."""
    for row in rows:
        yield [search.neutralise(cell) for cell in row]


def _safe(name: str) -> str:
    """A file name that survives a Content-Disposition header."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


@bp.get("/<int:import_id>/progress")
@role_required(Role.EDITOR)
def import_progress(import_id: int):
    """Status and counters of an import as JSON, for the progress bar."""
    report = import_service.progress(db.session, import_id)
    if report is None:
        abort(404)
    return jsonify(report)
