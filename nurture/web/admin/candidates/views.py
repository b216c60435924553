"""Admin pages: the candidate list (search, filters, bulk tag, CSV export) and one candidate."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from nurture import runtime
from nurture.core.audience import candidates as candidate_service
from nurture.core.audience import search
from nurture.core.audience import segments as segment_service
from nurture.core.campaigns import service as campaign_service
from nurture.core.compliance import erasure
from nurture.core.errors import ValidationError
from nurture.core.feedback.analytics import plural
from nurture.extensions import db
from nurture.models import Campaign, Candidate, CandidateStatus, Role, Segment
from nurture.web.admin.access import role_required, safe_next
from nurture.workflows import candidates as candidate_actions
from nurture.workflows import imports as import_service
from nurture.workflows import referrals as referral_service

bp = Blueprint("candidates", __name__, template_folder="templates")

TIMELINE_STEP = 200


class CandidateForm(FlaskForm):
    """A candidate's profile; the candidates service validates it, errors land at the fields."""

    first_name = StringField("First name", validators=[Optional()])
    last_name = StringField("Last name", validators=[Optional()])
    role = StringField("Role applied for", validators=[Optional()])
    stage = StringField("Furthest stage", validators=[Optional()])
    rejection_reason = StringField("Rejection reason", validators=[Optional()])
    strengths = TextAreaField("Interview strengths", validators=[Optional()])
    skills = StringField("Skills", validators=[Optional()])
    location = StringField("Location", validators=[Optional()])
    timezone = StringField("Time zone", validators=[Optional()])
    language = StringField("Language", validators=[Optional()])
    source = StringField("Source", validators=[Optional()])
    recruiter_name = StringField("Recruiter", validators=[Optional()])
    recruiter_email = EmailField("Recruiter email", validators=[Optional()])
    consent_basis = StringField("Consent basis", validators=[Optional()])
    consent_source = StringField("Consent source", validators=[Optional()])
    consent_at = StringField("Consent given at", validators=[Optional()])
    attributes = TextAreaField("Custom attributes (JSON)", validators=[Optional()])


class TagForm(FlaskForm):
    """Add one or more tags to a candidate."""

    tag = StringField("Add tags", validators=[Optional()])


class BulkTagForm(FlaskForm):
    """Add a tag to every candidate the list's filters match."""

    new_tag = StringField("Tag", validators=[Optional()])


class EnrolForm(FlaskForm):
    """Put a candidate into an active campaign."""

    campaign_id = SelectField("Campaign", coerce=int, validate_choice=False)


def _show_errors(form: FlaskForm, fields: dict[str, str], fallback: str) -> None:
    """Put a service's field errors on the form; any without a field goes on ``fallback``."""
    for name, reason in fields.items():
        target = getattr(form, name, None) or getattr(form, fallback)
        target.errors = [*target.errors, reason]


def _candidate_or_404(candidate_id: int) -> Candidate:
    candidate = db.session.get(Candidate, candidate_id)
    if candidate is None:
        abort(404)
    return candidate


def _editable_or_redirect(candidate: Candidate) -> Response | None:
    """An erased candidate's record is closed: refuse changes with a message."""
    if candidate.status == CandidateStatus.ERASED:
        flash("This candidate was erased; their record can no longer change.", "error")
        return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))
    return None


# ---------------------------------------------------------------------------------------------
# The list
# ---------------------------------------------------------------------------------------------


def _pager(filters: search.CandidateFilters, page: search.Page) -> SimpleNamespace:
    """Links around the current page."""

    def link(number: int) -> str:
        return url_for("admin.candidates.candidates", **filters.to_args(page=number))

    return SimpleNamespace(
        summary=page.summary,
        first_url=link(1) if page.number > 1 else None,
        prev_url=link(page.number - 1) if page.number > 1 else None,
        next_url=link(page.number + 1) if page.has_next else None,
        last_url=link(page.pages) if page.pages and page.number < page.pages else None,
        label=f"Page {page.number:,}" + (f" of {page.pages:,}" if page.pages else ""),
    )


def _render_list(
    filters: search.CandidateFilters,
    errors: dict[str, str] | None = None,
    bulk_form: BulkTagForm | None = None,
    status: int = 200,
):
    """The list page for ``filters`` (no rows when the filters themselves are bad)."""
    result = None if errors else search.page(db.session, filters, runtime.now())
    sorts = {
        key: url_for("admin.candidates.candidates", **filters.sort_args(key))
        for key in search.SORTS
    }
    return (
        render_template(
            "admin/candidates/list.html",
            campaigns=[c for c in search.active_campaigns(db.session) if c.kind == "drip"],
            filters=filters,
            errors=errors or {},
            result=result,
            pager=_pager(filters, result) if result else None,
            sorts=sorts,
            facets=search.facets(db.session, runtime.now()),
            statuses=search.STATUSES,
            engagement=search.ENGAGEMENT,
            bulk_form=bulk_form or BulkTagForm(),
            has_imports="admin.imports.imports" in current_app.view_functions,
        ),
        status,
    )


def _filters_or_errors() -> tuple[search.CandidateFilters, dict[str, str]]:
    """The list options in the query string; bad ones are reported, defaults used meanwhile."""
    try:
        return search.CandidateFilters.from_args(request.args), {}
    except ValidationError as exc:
        # Echo what was typed back into the form, so the person sees what to correct.
        args = request.args
        echo = search.CandidateFilters(
            q=(args.get("q") or "")[: search.MAX_QUERY],
            tag=(args.get("tag") or "")[: search.MAX_TAG],
            stage=(args.get("stage") or "")[:100],
            source=(args.get("source") or "")[:100],
        )
        return echo, exc.fields


@bp.get("")
@role_required(Role.VIEWER)
def candidates():
    """Search, filter, sort and page through candidates."""
    filters, errors = _filters_or_errors()
    return _render_list(filters, errors, status=400 if errors else 200)


@bp.post("/bulk-tag")
@role_required(Role.EDITOR)
def candidates_bulk_tag():
    """Tag every candidate the current search and filters match."""
    filters, errors = _filters_or_errors()
    if errors:
        return _render_list(filters, errors, status=400)
    form = BulkTagForm()
    if not form.validate_on_submit():
        return _render_list(filters, bulk_form=form, status=400)
    try:
        result = candidate_actions.bulk_tag(db.session, filters, form.new_tag.data, runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        form.new_tag.errors = [exc.fields.get("tag", exc.message)]
        return _render_list(filters, bulk_form=form, status=422)
    db.session.commit()
    plural = "s" if result.tagged != 1 else ""
    message = f"Tagged {result.tagged:,} candidate{plural} “{result.tag}”."
    for name, count in result.enrolled.items():
        message += f" {count:,} enrolled in “{name}”."
    flash(message, "success")
    return redirect(url_for("admin.candidates.candidates", **filters.to_args()))


def _selection() -> tuple[Any, str]:
    """The candidates a bulk action is for, as a select of ids, and how to name them.

    The rows ticked (``scope=ids``), or everyone the page was about: a list's search and
    filters, a segment (``segment_id``) or an import (``import_id``).
    """
    form = request.form
    if form.get("scope") == "ids":
        ids = [int(value) for value in form.getlist("ids") if value.isdigit()]
        if not ids:
            raise ValidationError("nothing ticked", {"ids": "tick at least one candidate"})
        return select(Candidate.id).where(Candidate.id.in_(ids)), plural(len(ids), "candidate")
    if form.get("segment_id", "").isdigit():
        segment = db.session.get(Segment, int(form["segment_id"]))
        if segment is None:
            abort(404)
        return (
            segment_service.members(segment.rules, runtime.now(), db.session).order_by(None),
            f"everyone in “{segment.name}”",
        )
    if form.get("import_id", "").isdigit():
        job = import_service.get_import(db.session, int(form["import_id"]))
        if job is None:
            abort(404)
        return import_service.imported_ids(job), f"everyone imported from {job.filename}"
    try:
        filters = search.CandidateFilters.from_args(form)
    except ValidationError as exc:
        raise ValidationError("the list options are not valid", exc.fields) from None
    label = "every matching candidate" if filters.is_filtered else "every candidate"
    return search.matching_ids(filters, runtime.now()), label


@bp.post("/bulk")
@role_required(Role.EDITOR)
def candidates_bulk():
    """Enrol, tag or export a selection of candidates: the rows ticked, or every one a list,
    a segment or an import holds."""
    back = safe_next(request.form.get("next") or url_for("admin.candidates.candidates"))
    if not FlaskForm().validate_on_submit():
        abort(400)
    action = request.form.get("action", "")
    try:
        ids, who = _selection()
        if action == "export":
            rows = search.export_rows(
                db.session, search.CandidateFilters(), runtime.now(), only=ids
            )
            stamp = runtime.now().strftime("%Y%m%d-%H%M")
            return Response(
                stream_with_context(search.csv_lines(rows)),
                mimetype="text/csv",
                headers={
                    "Content-Disposition": f'attachment; filename="candidates-{stamp}.csv"',
                    "Cache-Control": "no-store",
                },
            )
        if action == "tag":
            result = candidate_actions.tag_candidates(
                db.session, ids, request.form.get("new_tag", ""), runtime.now()
            )
            message = f"Tagged {plural(result.tagged, 'candidate')} “{result.tag}” ({who})."
            for name, count in result.enrolled.items():
                message += f" {count:,} enrolled in “{name}”."
        elif action == "enrol":
            campaign_id = request.form.get("campaign_id", "")
            campaign = db.session.get(Campaign, int(campaign_id)) if campaign_id.isdigit() else None
            if campaign is None:
                raise ValidationError("no campaign", {"campaign_id": "choose a drip to enrol in"})
            outcome = candidate_actions.bulk_enrol(db.session, ids, campaign, runtime.now())
            message = f"Enrolled {plural(outcome.enrolled, 'candidate')} in “{outcome.campaign}”."
            if outcome.skipped:
                message += (
                    " Not enrolled: "
                    + "; ".join(f"{count:,} {why}" for why, count in outcome.skipped.items())
                    + "."
                )
        else:
            raise ValidationError("no action", {"action": "choose enrol, tag or export"})
    except ValidationError as exc:
        db.session.rollback()
        flash("Nothing changed: " + "; ".join(exc.fields.values()) + ".", "error")
        return redirect(back)
    db.session.commit()
    flash(message, "success")
    return redirect(back)


@bp.get("/export.csv")
@role_required(Role.VIEWER)
def candidates_export():
    """The filtered list as CSV, streamed in chunks, safe to open in a spreadsheet."""
    filters, errors = _filters_or_errors()
    if errors:
        return _render_list(filters, errors, status=400)
    rows = search.export_rows(db.session, filters, runtime.now())
    stamp = runtime.now().strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(search.csv_lines(rows)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="candidates-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


# ---------------------------------------------------------------------------------------------
# One candidate
# ---------------------------------------------------------------------------------------------


def _render_detail(
    candidate: Candidate,
    tag_form: TagForm | None = None,
    enrol_form: EnrolForm | None = None,
    status: int = 200,
):
    """The candidate page, with the action forms as given (to show their errors)."""
    campaigns = search.active_campaigns(db.session)
    enrol_form = enrol_form or EnrolForm()
    enrol_form.campaign_id.choices = [(c.id, c.name) for c in campaigns]
    shown = request.args.get("show", type=int) or TIMELINE_STEP
    enrolments = search.enrolments(db.session, candidate.id)
    return (
        render_template(
            "admin/candidates/detail.html",
            candidate=candidate,
            enrolments=enrolments,
            outlooks=campaign_service.outlooks(db.session, [row.enrolment for row in enrolments]),
            held=campaign_service.held_mail(
                db.session, [row.enrolment.id for row in enrolments], runtime.now()
            ),
            timeline=search.timeline(db.session, candidate.id, limit=max(1, min(shown, 5000))),
            timeline_step=TIMELINE_STEP,
            shown=shown,
            tag_form=tag_form or TagForm(),
            enrol_form=enrol_form,
            can_enrol=bool(campaigns),
            erased=candidate.status == CandidateStatus.ERASED,
        ),
        status,
    )


@bp.get("/<int:candidate_id>")
@role_required(Role.VIEWER)
def candidate(candidate_id: int):
    """A candidate's profile, tags, enrolments and timeline."""
    return _render_detail(_candidate_or_404(candidate_id))


@bp.route("/<int:candidate_id>/edit", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def candidate_edit(candidate_id: int):
    """Edit a candidate's profile."""
    candidate = _candidate_or_404(candidate_id)
    if (closed := _editable_or_redirect(candidate)) is not None:
        return closed
    form = CandidateForm(data=search.profile_values(candidate) if request.method == "GET" else None)
    status = 200
    if form.validate_on_submit():
        try:
            candidate_actions.update_profile(db.session, candidate, form.data, runtime.now())
        except ValidationError as exc:
            db.session.rollback()
            _show_errors(form, exc.fields, "first_name")
            status = 422
        else:
            db.session.commit()
            flash("Profile saved.", "success")
            return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))
    elif request.method == "POST":
        status = 400
    return render_template("admin/candidates/edit.html", candidate=candidate, form=form), status


@bp.post("/<int:candidate_id>/tags")
@role_required(Role.EDITOR)
def candidate_tag_add(candidate_id: int):
    """Add tags; campaigns that start on one of them enrol the candidate."""
    candidate = _candidate_or_404(candidate_id)
    if (closed := _editable_or_redirect(candidate)) is not None:
        return closed
    form = TagForm()
    if not form.validate_on_submit():
        return _render_detail(candidate, tag_form=form, status=400)
    try:
        added, entered = candidate_actions.add_tags(
            db.session, candidate, form.tag.data or "", runtime.now()
        )
    except ValidationError as exc:
        db.session.rollback()
        form.tag.errors = [exc.fields.get("tag", exc.message)]
        return _render_detail(candidate, tag_form=form, status=422)
    db.session.commit()
    if not added:
        flash("They already carry that tag.", "info")
    else:
        message = f"Tagged {', '.join(f'“{name}”' for name in added)}."
        if entered:
            message += f" Enrolled in {entered} campaign{'s' if entered != 1 else ''}."
        flash(message, "success")
    return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))


@bp.post("/<int:candidate_id>/tags/<int:tag_id>/remove")
@role_required(Role.EDITOR)
def candidate_tag_remove(candidate_id: int, tag_id: int):
    """Take a tag off the candidate."""
    candidate = _candidate_or_404(candidate_id)
    if (closed := _editable_or_redirect(candidate)) is not None:
        return closed
    name = candidate_actions.remove_tag(db.session, candidate, tag_id, runtime.now())
    db.session.commit()
    if name is None:
        flash("They do not carry that tag.", "info")
    else:
        flash(f"Removed the tag “{name}”.", "success")
    return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))


@bp.post("/<int:candidate_id>/enrol")
@role_required(Role.EDITOR)
def candidate_enrol(candidate_id: int):
    """Enrol the candidate into an active campaign, or say why they cannot be."""
    candidate = _candidate_or_404(candidate_id)
    if (closed := _editable_or_redirect(candidate)) is not None:
        return closed
    form = EnrolForm()
    campaign = None
    if form.validate_on_submit() and form.campaign_id.data:
        campaign = db.session.get(Campaign, form.campaign_id.data)
    if campaign is None:
        form.campaign_id.errors = [*form.campaign_id.errors, "choose a campaign"]
        return _render_detail(candidate, enrol_form=form, status=400)
    try:
        candidate_actions.enrol_by_hand(db.session, candidate, campaign, runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        _show_errors(form, exc.fields, "campaign_id")
        flash(f"Not enrolled: {exc.message}.", "error")
        return _render_detail(candidate, enrol_form=form, status=422)
    db.session.commit()
    flash(f"Enrolled in “{campaign.name}”.", "success")
    return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))


@bp.post("/<int:candidate_id>/hire")
@role_required(Role.EDITOR)
def candidate_hire(candidate_id: int):
    """Mark the candidate hired: every drip they are in stops."""
    candidate = _candidate_or_404(candidate_id)
    if (closed := _editable_or_redirect(candidate)) is not None:
        return closed
    candidate_service.mark_hired(db.session, candidate, runtime.now())
    referral_service.on_hired(db.session, candidate, runtime.now())  # thanks their referrer
    db.session.commit()
    flash(
        f"{candidate.full_name or candidate.email} is marked hired; their drips stopped.", "success"
    )
    return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))


@bp.post("/<int:candidate_id>/erase")
@role_required(Role.ADMIN)
def candidate_erase(candidate_id: int):
    """Erase the candidate's personal data; the address survives only as a suppression hash."""
    candidate = _candidate_or_404(candidate_id)
    if (closed := _editable_or_redirect(candidate)) is not None:
        return closed
    erasure.erase(db.session, candidate, runtime.now())
    db.session.commit()
    flash(
        "Erased: personal data removed; the address is kept only as a hash so it is never "
        "mailed again.",
        "success",
    )
    return redirect(url_for("admin.candidates.candidate", candidate_id=candidate.id))
