"""Admin pages: the template gallery, the editor with live preview, versions, and test sends."""

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
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, StringField, TextAreaField

from nurture import runtime
from nurture.core.campaigns.openings import job_shown
from nurture.core.content import templates as template_service
from nurture.core.content.rendering import CompiledTemplate, RenderedMail
from nurture.core.errors import Conflict, NotFound, ValidationError
from nurture.extensions import db
from nurture.models import Candidate, EmailTemplate, Opening, Role, Step
from nurture.tasks.sending import template_library
from nurture.web.admin import mail as mail_helpers
from nurture.web.admin.access import role_required, safe_next
from nurture.web.security import MAX_ID

bp = Blueprint("email_templates", __name__, template_folder="templates")

# A rendered mail shown in a frame of our own pages: its inline styles may apply, nothing else
# may load or run (the frame is sandboxed too).
# A rendered mail runs nothing and is shown only inside the admin's own pages (a frame).
MAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; sandbox; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


class TemplateForm(FlaskForm):
    """A template's parts, plus who to preview it for and where to send a test."""

    name = StringField("Name")
    description = StringField("Description")
    subject = StringField("Subject")
    html = TextAreaField("HTML")
    text = TextAreaField("Plain text")
    candidate = StringField("Preview for")
    to = EmailField("Send a test to")


def _template_or_404(template_id: int) -> EmailTemplate:
    """The team template with this id, or 404 (a starter's edit is opened as the starter)."""
    try:
        template = template_service.get_template(db.session, template_id)
    except NotFound:
        abort(404)
    return template


def _starter_or_404(name: str) -> template_service.Source:
    """The starter file with this name, or 404."""
    try:
        return template_service.starter_source(template_library(current_app), name)
    except NotFound:
        abort(404)


def _candidate(query: str, errors: dict[str, str]) -> Candidate:
    """The candidate asked for, else the first active one, else the built-in sample."""
    found = template_service.find_candidate(db.session, query)
    if found is None and query.strip():
        errors["candidate"] = f"no candidate's address starts with {query.strip()}"
        found = template_service.find_candidate(db.session, "")
    return found or template_service.sample_candidate()


def _label(candidate: Candidate) -> str:
    """How the page names the candidate a preview is for."""
    if candidate.id is None:
        return f"a sample candidate, {candidate.full_name} (there are no active candidates yet)"
    return f"{candidate.full_name or candidate.email} <{candidate.email}>"


def _render(
    source: template_service.Source, candidate: Candidate
) -> tuple[CompiledTemplate, RenderedMail]:
    """Check and compile ``source`` as a save would, and render it for ``candidate``."""
    settings = mail_helpers.settings()
    compiled = template_service.compile_checked(template_library(current_app), settings, source)
    return compiled, template_service.render_preview(
        compiled, settings, mail_helpers.tokens(settings), candidate
    )


def _notes(
    source: template_service.Source,
    compiled: CompiledTemplate,
    mail: RenderedMail,
    candidate: Candidate,
) -> list[str]:
    """What the author should know about this mail before it goes out."""
    return template_service.review(
        template_library(current_app), mail_helpers.settings(), source, compiled, mail, candidate
    )


def _preview(source: template_service.Source | None, candidate: Candidate, errors: dict) -> Any:
    """The preview shown on the page, or None (and field errors) when it cannot be rendered."""
    if source is None:
        return None
    try:
        compiled, mail = _render(source, candidate)
    except ValidationError as exc:
        errors.update(exc.fields)
        return None
    return {
        "mail": mail,
        "warning": template_service.subject_warning(mail),
        "notes": _notes(source, compiled, mail, candidate),
        "job": template_service.uses_job(source),
    }


def _apply_errors(form: FlaskForm, errors: dict[str, str]) -> None:
    """Show each error at its field; errors without a field become flashes."""
    for field, message in errors.items():
        if field in form:
            form[field].errors = [*form[field].errors, message]
        else:
            flash(message, "error")


def _editor_page(
    form: FlaskForm,
    *,
    template: EmailTemplate | None = None,
    starter: str | None = None,
    source: template_service.Source | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
):
    """Render the editor (read-only for viewers) with a preview of ``source``."""
    errors = dict(errors or {})
    candidate = _candidate(form.candidate.data or "", errors)
    content_errors = {"subject", "html", "text"} & set(errors)
    preview = None if content_errors else _preview(source, candidate, errors)
    _apply_errors(form, errors)
    if errors and status == 200:
        status = 422
    name = starter or (template.name if template is not None else "")
    used_by = template_service.campaigns_using(db.session).get(name, []) if name else []
    edit = template_service.edit_of(db.session, starter) if starter else None
    return render_template(
        "admin/templates/editor.html",
        form=form,
        template=template,
        starter=starter,
        edit=edit,
        editable=current_user.has_role(Role.EDITOR),
        preview=preview,
        candidate=candidate,
        candidate_label=_label(candidate),
        used_by=used_by,
        versions=template_service.versions(db.session, name) if name else [],
        variables=template_service.variables(current_app.config["COMPANY_NAME"]),
    ), status


def _posted_source(form: TemplateForm) -> template_service.Source:
    """The template parts as posted from the editor."""
    return template_service.clean_source(form.html.data, form.text.data, form.subject.data)


@bp.get("")
@role_required(Role.VIEWER)
def templates():
    """The gallery: the starter library and the team's own templates, with thumbnails."""
    library = template_library(current_app)
    starters, team = template_service.list_templates(db.session, library)
    # The subject as a candidate reads it ("Thank you for your time with Acme"), not its Jinja.
    sample = template_service.sample_candidate()
    subjects = {}
    for info in [*starters, *team]:
        try:
            subjects[info.name] = mail_helpers.render(library.get(info.name), sample).subject
        except ValidationError:
            subjects[info.name] = info.subject
    return render_template(
        "admin/templates/index.html", starters=starters, team=team, subjects=subjects
    )


@bp.get("/thumbnail/<name>")
@role_required(Role.VIEWER)
def thumbnail(name: str):
    """A template rendered for the sample candidate, for the gallery's thumbnail frames."""
    library = template_library(current_app)
    try:
        mail = mail_helpers.render(library.get(name), template_service.sample_candidate())
    except ValidationError:
        abort(404)
    return _mail_response(mail.html)


def _mail_response(html: str) -> Response:
    """A rendered mail as a page of its own, which only a sandboxed frame shows."""
    return Response(
        html,
        mimetype="text/html",
        headers={
            "Content-Security-Policy": MAIL_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )


@bp.get("/open/<name>")
@role_required(Role.VIEWER)
def open_template(name: str):
    """A template by the name campaign steps use: the starter's page, or the team's."""
    if name in template_library(current_app).names():
        return redirect(url_for("admin.email_templates.starter_template", name=name))
    template = db.session.scalar(select(EmailTemplate).where(EmailTemplate.name == name))
    if template is None:
        abort(404)
    return redirect(url_for("admin.email_templates.edit_template", template_id=template.id))


@bp.get("/new")
@role_required(Role.EDITOR)
def new_template():
    """An empty editor that starts from the layout."""
    form = TemplateForm(html=template_service.SKELETON, candidate=request.args.get("candidate"))
    return _editor_page(form)


@bp.get("/<int:template_id>")
@role_required(Role.VIEWER)
def edit_template(template_id: int):
    """A team template in the editor (read-only for viewers), previewed for a candidate."""
    template = _template_or_404(template_id)
    if template.name in template_library(current_app).names():
        return redirect(url_for("admin.email_templates.starter_template", name=template.name))
    form = TemplateForm(obj=template, candidate=request.args.get("candidate"))
    source = template_service.clean_source(template.html, template.text, template.subject)
    return _editor_page(form, template=template, source=source)


@bp.get("/starter/<name>")
@role_required(Role.VIEWER)
def starter_template(name: str):
    """A starter in the editor: as shipped, or as the team edited it; previewed for a
    candidate."""
    _starter_or_404(name)
    library = template_library(current_app)
    source, edit = template_service.current_source(db.session, library, name)
    purposes = template_service.starter_descriptions(library)
    form = TemplateForm(
        name=name,
        description=(edit.description if edit is not None else "") or purposes.get(name, ""),
        subject=source.subject,
        html=source.html,
        text=source.text,
        candidate=request.args.get("candidate"),
    )
    return _editor_page(form, starter=name, source=source)


@bp.post("/new")
@role_required(Role.EDITOR)
def create_template():
    """Save a new template, preview it, or send a test of it (by the button pressed)."""
    return _handle_post(None)


@bp.post("/<int:template_id>")
@role_required(Role.EDITOR)
def update_template(template_id: int):
    """Save a template, preview the editor's content, or send a test of it."""
    return _handle_post(_template_or_404(template_id))


@bp.post("/starter/<name>")
@role_required(Role.EDITOR)
def update_starter(name: str):
    """Save the editor's content as the team's version of a starter, preview it, or test it."""
    _starter_or_404(name)
    return _handle_post(template_service.edit_of(db.session, name), starter=name)


def _handle_post(template: EmailTemplate | None, starter: str | None = None):
    """Save, preview, test-send or make the text from the HTML, by the button pressed."""
    form = TemplateForm()
    if not form.validate_on_submit():
        abort(400)  # only the CSRF token is checked here; the service checks the rest
    action = request.form.get("action", "save")
    if starter is not None:
        form.name.data = starter  # a starter keeps its name: campaigns find it by it
    page = {"template": template if starter is None else None, "starter": starter}
    if action == "text_from_html":
        form.text.data = ""
        flash("The plain text will be made from the HTML. Save to keep it that way.", "info")
        action = "preview"
    source = _posted_source(form)
    if action == "preview":
        return _editor_page(form, source=source, **page)
    if action == "test":
        return _test_send(form, source, **page)
    try:
        saved = template_service.save_template(
            db.session,
            template_library(current_app),
            mail_helpers.settings(),
            form.data,
            template=template,
            user_id=current_user.id,
            now=runtime.now(),
            starter=starter is not None,
        )
    except ValidationError as exc:
        db.session.rollback()
        return _editor_page(form, source=source, errors=exc.fields, **page)
    db.session.commit()
    flash(f"Saved {saved.name}." + _live_note(saved.name), "success")
    errors: dict[str, str] = {}
    candidate = _candidate(form.candidate.data or "", errors)
    try:
        compiled, mail = _render(source, candidate)
        for note in _notes(source, compiled, mail, candidate):
            flash(note, "warning")
    except ValidationError:
        pass  # it saved, so it compiles; a preview candidate's odd data is shown on the page
    target = (
        url_for("admin.email_templates.starter_template", name=starter)
        if starter is not None
        else url_for("admin.email_templates.edit_template", template_id=saved.id)
    )
    candidate_query = form.candidate.data or None
    return redirect(target + (f"?candidate={candidate_query}" if candidate_query else ""))


def _live_note(name: str) -> str:
    """A sentence naming the campaigns whose next mails a save changes."""
    using = template_service.campaigns_using(db.session).get(name)
    if not using:
        return ""
    return f" The next mails of {', '.join(using)} use this version."


def _test_send(
    form: FlaskForm,
    source: template_service.Source,
    *,
    template: EmailTemplate | None = None,
    starter: str | None = None,
    back_to_starter: bool = False,
):
    """Send one "[Test]" mail of ``source`` for the chosen candidate; nothing is recorded."""
    errors: dict[str, str] = {}
    candidate = _candidate(form.candidate.data or "", errors)
    page = {"template": template, "starter": starter, "source": source}
    if errors:
        return _editor_page(form, errors=errors, **page)
    try:
        compiled, _ = _render(source, candidate)
        message = mail_helpers.send_test(compiled, candidate, form.to.data or "")
    except ValidationError as exc:
        return _editor_page(form, errors=exc.fields, **page)
    except mail_helpers.TestProblem as exc:
        flash(str(exc), "error")
        return _editor_page(form, status=500 if "DKIM" in str(exc) else 502, **page)
    flash(message, "success")
    if back_to_starter and starter is not None:
        # A test of the saved starter, not of an editor's content: back to its page.
        query = form.candidate.data or None
        return redirect(
            url_for("admin.email_templates.starter_template", name=starter, candidate=query)
        )
    return _editor_page(form, **page)  # the editor may hold unsaved changes: keep them


@bp.post("/starter/<name>/test")
@role_required(Role.EDITOR)
def test_starter(name: str):
    """Send a test of a starter as it sends now, for the chosen candidate."""
    _starter_or_404(name)
    form = TemplateForm()
    if not form.validate_on_submit():
        abort(400)
    source, _ = template_service.current_source(db.session, template_library(current_app), name)
    form.name.data, form.html.data, form.text.data = name, source.html, source.text
    form.subject.data = source.subject
    return _test_send(form, source, starter=name, back_to_starter=True)


@bp.post("/starter/<name>/duplicate")
@role_required(Role.EDITOR)
def duplicate_starter(name: str):
    """Copy a starter (as it sends now) into a new template and open the copy."""
    _starter_or_404(name)
    try:
        copy = template_service.duplicate_starter(
            db.session,
            template_library(current_app),
            mail_helpers.settings(),
            name,
            user_id=current_user.id,
            now=runtime.now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        flash("; ".join(exc.fields.values()) or exc.message, "error")
        return redirect(url_for("admin.email_templates.starter_template", name=name))
    db.session.commit()
    flash(f"Copied {name} to {copy.name}: a template of its own, the starter stays.", "success")
    return redirect(url_for("admin.email_templates.edit_template", template_id=copy.id))


@bp.post("/starter/<name>/reset")
@role_required(Role.EDITOR)
def reset_starter(name: str):
    """Send the starter as shipped again; the team's versions stay, to restore."""
    _starter_or_404(name)
    try:
        template_service.reset_starter(
            db.session, template_library(current_app), name, current_user.id, runtime.now()
        )
    except Conflict as exc:
        db.session.rollback()
        flash(str(exc)[:1].upper() + str(exc)[1:] + ".", "info")
        return redirect(url_for("admin.email_templates.starter_template", name=name))
    db.session.commit()
    flash(f"{name} is the starter as shipped again." + _live_note(name), "success")
    return redirect(url_for("admin.email_templates.starter_template", name=name))


@bp.post("/versions/<int:version_id>/restore")
@role_required(Role.EDITOR)
def restore_version(version_id: int):
    """Make an earlier version of a template current again."""
    library = template_library(current_app)
    try:
        saved = template_service.restore_version(
            db.session,
            library,
            mail_helpers.settings(),
            version_id,
            current_user.id,
            runtime.now(),
        )
    except NotFound:
        abort(404)
    except ValidationError as exc:
        db.session.rollback()
        problems = "; ".join(exc.fields.values())
        flash(f"That version no longer passes the checks: {problems}", "error")
        return redirect(request.referrer or url_for("admin.email_templates.templates"))
    db.session.commit()
    flash(f"Restored {saved.name} as it was." + _live_note(saved.name), "success")
    if saved.name in library.names():
        return redirect(url_for("admin.email_templates.starter_template", name=saved.name))
    return redirect(url_for("admin.email_templates.edit_template", template_id=saved.id))


@bp.post("/<int:template_id>/delete")
@role_required(Role.EDITOR)
def delete_template(template_id: int):
    """Delete a template that no campaign uses."""
    template = _template_or_404(template_id)
    name = template.name
    try:
        template_service.delete_template(db.session, template)
    except Conflict as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.email_templates.edit_template", template_id=template_id))
    db.session.commit()
    flash(f"Deleted {name}.", "success")
    return redirect(url_for("admin.email_templates.templates"))


@bp.post("/preview")
@role_required(Role.VIEWER)
def preview_template():
    """The live preview (JSON for the editor's fetch): subject, HTML and text, or field errors."""
    form = TemplateForm()
    if not form.validate_on_submit():
        return jsonify(ok=False, errors={"csrf_token": "reload the page and try again"}), 400
    errors: dict[str, str] = {}
    library = template_library(current_app)
    if current_user.has_role(Role.EDITOR) and request.form.get("html") is not None:
        source = _posted_source(form)
    elif request.form.get("starter"):
        _starter_or_404(request.form["starter"])
        source, _ = template_service.current_source(db.session, library, request.form["starter"])
    elif request.form.get("template_id", "").isdigit():
        template_id = int(request.form["template_id"][:12])
        template = _template_or_404(template_id if template_id <= MAX_ID else 0)
        source = template_service.clean_source(template.html, template.text, template.subject)
    else:
        abort(403)  # viewers preview what is saved, not content of their own
    candidate = _candidate(form.candidate.data or "", errors)
    try:
        compiled, mail = _render(source, candidate)
    except ValidationError as exc:
        return jsonify(ok=False, errors={**errors, **exc.fields}), 422
    return jsonify(
        ok=True,
        errors=errors,
        subject=mail.subject,
        html=mail.html,
        text=mail.text,
        candidate=_label(candidate),
        warning=template_service.subject_warning(mail),
        notes=_notes(source, compiled, mail, candidate),
        job=template_service.uses_job(source),
    )


@bp.get("/candidates")
@role_required(Role.VIEWER)
def template_candidates():
    """Candidates whose address or name starts with ``q`` (the preview's search box)."""
    found = template_service.search_candidates(db.session, request.args.get("q", ""))
    return jsonify([{"email": email, "name": name} for email, name in found])


# --- a mail as it goes out, for the confirm pages --------------------------------------------


def _mail_of(args: Any) -> tuple[CompiledTemplate, Candidate, dict[str, Any] | None]:
    """The mail the request names (a template and subject, or a campaign step), the candidate
    it is for and the job it shows; 404 when one of them does not exist."""
    step = None
    if str(args.get("step", "")).isdigit():
        step = db.session.get(Step, min(int(args["step"][:12]), MAX_ID + 1))
        if step is None:
            abort(404)
    candidate = None
    if str(args.get("candidate", "")).isdigit():
        # Bounded: a 30-digit id is no candidate, not an integer the database overflows on.
        candidate = db.session.get(Candidate, min(int(args["candidate"][:12]), MAX_ID + 1))
        if candidate is None:
            abort(404)
    job = None
    if str(args.get("job", "")).isdigit():
        opening = db.session.get(Opening, min(int(args["job"][:12]), MAX_ID + 1))
        if opening is None:
            abort(404)
        job = job_shown(opening)
    try:
        mail = mail_helpers.compiled(
            str(args.get("template", "")), str(args.get("subject", "")), step
        )
    except ValidationError:
        abort(404)
    return mail, candidate or template_service.sample_candidate(), job


@bp.get("/mail")
@role_required(Role.VIEWER)
def mail_frame():
    """A mail as a candidate gets it (not tracked), for a confirm page's preview frame."""
    mail, candidate, job = _mail_of(request.args)
    return _mail_response(mail_helpers.render(mail, candidate, job).html)


@bp.post("/mail/test")
@role_required(Role.EDITOR)
def mail_test():
    """Send a test of the mail a confirm page shows; JSON for its fetch, else back to it."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    mail, candidate, job = _mail_of(request.form)
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        message = mail_helpers.send_test(mail, candidate, request.form.get("to", ""), job)
    except ValidationError as exc:
        problem = exc.fields.get("to", exc.message)
        if wants_json:
            return jsonify(ok=False, message=problem), 422
        flash(f"The test was not sent: {problem}.", "error")
    except mail_helpers.TestProblem as exc:
        if wants_json:
            return jsonify(ok=False, message=str(exc)), 502
        flash(str(exc), "error")
    else:
        if wants_json:
            return jsonify(ok=True, message=message)
        flash(message, "success")
    return redirect(safe_next(request.form.get("next")))
