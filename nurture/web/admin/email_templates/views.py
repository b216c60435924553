"""Admin pages: the template library, the editor with live preview, and test sends."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
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
from wtforms import EmailField, StringField, TextAreaField

from nurture import runtime
from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.core.content.rendering import CompiledTemplate, RenderedMail
from nurture.core.delivery import proofs
from nurture.core.delivery.dkim import DkimError
from nurture.core.delivery.smtp import SmtpSettings, SmtpTransport
from nurture.core.errors import Conflict, NotFound, ValidationError
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, EmailTemplate, Role
from nurture.tasks.sending import dkim_signer, template_library
from nurture.web.admin.access import role_required
from nurture.web.security import MAX_ID

bp = Blueprint("email_templates", __name__, template_folder="templates")


class TemplateForm(FlaskForm):
    """A template's parts, plus who to preview it for and where to send a test."""

    name = StringField("Name")
    description = StringField("Description")
    subject = StringField("Subject")
    html = TextAreaField("HTML")
    text = TextAreaField("Plain text")
    candidate = StringField("Preview for")
    to = EmailField("Send a test to")


def _settings() -> MailSettings:
    """The sender and footer settings real mail uses."""
    return MailSettings.from_config(current_app.config)


def _tokens(settings: MailSettings) -> Tokens:
    """The signer of real unsubscribe and preference links."""
    return Tokens(current_app.config["SECRET_KEY"], settings.base_url)


def _transport() -> SmtpTransport:
    """A connection to the configured SMTP relay (one per test send)."""
    config = current_app.config
    return SmtpTransport(SmtpSettings.from_url(config["SMTP_URL"], config["SMTP_TIMEOUT"]))


def _template_or_404(template_id: int) -> EmailTemplate:
    """The team template with this id, or 404."""
    try:
        return template_service.get_template(db.session, template_id)
    except NotFound:
        abort(404)


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
    settings = _settings()
    compiled = template_service.compile_checked(template_library(current_app), settings, source)
    return compiled, template_service.render_preview(
        compiled, settings, _tokens(settings), candidate
    )


def _preview(source: template_service.Source | None, candidate: Candidate, errors: dict) -> Any:
    """The preview shown on the page, or None (and field errors) when it cannot be rendered."""
    if source is None:
        return None
    try:
        _, mail = _render(source, candidate)
    except ValidationError as exc:
        errors.update(exc.fields)
        return None
    return {
        "mail": mail,
        "warning": template_service.subject_warning(mail),
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
    """Render the editor (or the read-only view) with a preview of ``source``."""
    errors = dict(errors or {})
    candidate = _candidate(form.candidate.data or "", errors)
    content_errors = {"subject", "html", "text"} & set(errors)
    preview = None if content_errors else _preview(source, candidate, errors)
    _apply_errors(form, errors)
    if errors and status == 200:
        status = 422
    name = starter or (template.name if template is not None else "")
    used_by = template_service.campaigns_using(db.session).get(name, []) if name else []
    return render_template(
        "admin/templates/editor.html",
        form=form,
        template=template,
        starter=starter,
        editable=starter is None and current_user.has_role(Role.EDITOR),
        preview=preview,
        candidate=candidate,
        candidate_label=_label(candidate),
        used_by=used_by,
        variables=template_service.variables(current_app.config["COMPANY_NAME"]),
    ), status


def _posted_source(form: TemplateForm) -> template_service.Source:
    """The template parts as posted from the editor."""
    return template_service.clean_source(form.html.data, form.text.data, form.subject.data)


@bp.get("")
@role_required(Role.VIEWER)
def templates():
    """The starter library and the team's own templates, side by side."""
    starters, team = template_service.list_templates(db.session, template_library(current_app))
    return render_template("admin/templates/index.html", starters=starters, team=team)


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
    form = TemplateForm(obj=template, candidate=request.args.get("candidate"))
    source = template_service.clean_source(template.html, template.text, template.subject)
    return _editor_page(form, template=template, source=source)


@bp.get("/starter/<name>")
@role_required(Role.VIEWER)
def starter_template(name: str):
    """A starter file, read-only, previewed for a candidate."""
    source = _starter_or_404(name)
    purposes = template_service.starter_descriptions(template_library(current_app))
    form = TemplateForm(
        name=name,
        description=purposes.get(name, ""),
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


def _handle_post(template: EmailTemplate | None):
    """Save, preview or test-send the editor's content, by the button pressed."""
    form = TemplateForm()
    if not form.validate_on_submit():
        abort(400)  # only the CSRF token is checked here; the service checks the rest
    action = request.form.get("action", "save")
    source = _posted_source(form)
    if action == "preview":
        return _editor_page(form, template=template, source=source)
    if action == "test":
        return _test_send(form, source, template=template)
    try:
        saved = template_service.save_template(
            db.session,
            template_library(current_app),
            _settings(),
            form.data,
            template=template,
            user_id=current_user.id,
            now=runtime.now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        return _editor_page(form, template=template, source=source, errors=exc.fields)
    db.session.commit()
    flash(f"Saved {saved.name}." + _live_note(saved.name), "success")
    return redirect(
        url_for(
            "admin.email_templates.edit_template",
            template_id=saved.id,
            candidate=form.candidate.data or None,
        )
    )


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
):
    """Send one "[Test]" mail of ``source`` for the chosen candidate; nothing is recorded."""
    errors: dict[str, str] = {}
    candidate = _candidate(form.candidate.data or "", errors)
    if not (form.to.data or "").strip():
        errors["to"] = "give the address to send the test to"
    page = {"template": template, "starter": starter, "source": source}
    if errors:
        return _editor_page(form, errors=errors, **page)
    try:
        compiled, _ = _render(source, candidate)
        mail = proofs.send_test(
            db.session,
            _transport(),
            _settings(),
            compiled,
            candidate,
            form.to.data,
            runtime.now(),
            dkim=dkim_signer(current_app._get_current_object()),
        )
    except ValidationError as exc:
        return _editor_page(form, errors=exc.fields, **page)
    except DkimError as exc:
        # Campaign mail would not go out either: say so rather than send the test unsigned.
        flash(f"The test was not sent: DKIM is set up but unusable: {exc}", "error")
        return _editor_page(form, status=500, **page)
    except proofs.TestSendFailed as exc:
        flash(f"The SMTP server did not take the test: {exc}", "error")
        return _editor_page(form, status=502, **page)
    flash(
        f"Sent “[Test] {mail.subject}” to {form.to.data.strip()}, as {_label(candidate)} "
        "would get it. Test mails are not tracked, and their unsubscribe link does nothing.",
        "success",
    )
    if starter is not None:
        return redirect(
            url_for(
                "admin.email_templates.starter_template",
                name=starter,
                candidate=form.candidate.data or None,
            )
        )
    return _editor_page(form, **page)  # the editor may hold unsaved changes: keep them


@bp.post("/starter/<name>/test")
@role_required(Role.EDITOR)
def test_starter(name: str):
    """Send a test of a starter template for the chosen candidate."""
    source = _starter_or_404(name)
    form = TemplateForm()
    if not form.validate_on_submit():
        abort(400)
    form.name.data, form.html.data, form.text.data = name, source.html, source.text
    return _test_send(form, source, starter=name)


@bp.post("/starter/<name>/duplicate")
@role_required(Role.EDITOR)
def duplicate_starter(name: str):
    """Copy a starter into the team's templates and open the copy in the editor."""
    _starter_or_404(name)
    try:
        copy = template_service.duplicate_starter(
            db.session,
            template_library(current_app),
            _settings(),
            name,
            user_id=current_user.id,
            now=runtime.now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        flash("; ".join(exc.fields.values()) or exc.message, "error")
        return redirect(url_for("admin.email_templates.starter_template", name=name))
    db.session.commit()
    flash(f"Copied {name} to {copy.name}: edit it here, the starter stays as it was.", "success")
    return redirect(url_for("admin.email_templates.edit_template", template_id=copy.id))


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
    if request.form.get("starter"):
        source = _starter_or_404(request.form["starter"])
    elif request.form.get("template_id", "").isdigit():
        template_id = int(request.form["template_id"][:12])
        template = _template_or_404(template_id if template_id <= MAX_ID else 0)
        source = template_service.clean_source(template.html, template.text, template.subject)
    elif current_user.has_role(Role.EDITOR):
        source = _posted_source(form)
    else:
        abort(403)  # viewers preview what is saved, not content of their own
    candidate = _candidate(form.candidate.data or "", errors)
    try:
        _, mail = _render(source, candidate)
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
        job=template_service.uses_job(source),
    )


@bp.get("/candidates")
@role_required(Role.VIEWER)
def template_candidates():
    """Candidates whose address or name starts with ``q`` (the preview's search box)."""
    found = template_service.search_candidates(db.session, request.args.get("q", ""))
    return jsonify([{"email": email, "name": name} for email, name in found])
