"""Admin pages: the languages of a template, the translation editor, previews and test sends
in each language.

The team's own template is edited on the template editor (its parts are in the team's
language); these pages hold what it says in other languages, and show the starter library's
translations read-only.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, StringField, TextAreaField

from nurture import runtime
from nurture.core import languages
from nurture.core.content import templates as template_service
from nurture.core.content import translations as translation_service
from nurture.core.content.mime import MailSettings
from nurture.core.content.rendering import CompiledTemplate
from nurture.core.delivery import proofs
from nurture.core.delivery.dkim import DkimError
from nurture.core.delivery.smtp import SmtpSettings, SmtpTransport
from nurture.core.errors import NotFound, ValidationError
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, EmailTemplate, Role
from nurture.tasks.sending import dkim_signer, template_library
from nurture.web.admin.access import role_required

bp = Blueprint("translations", __name__, template_folder="templates")


class TranslationForm(FlaskForm):
    """A translation's parts, who to preview it for and where to send a test."""

    language = StringField("Language")
    subject = StringField("Subject")
    html = TextAreaField("HTML")
    text = TextAreaField("Plain text")
    candidate = StringField("Preview for")
    to = EmailField("Send a test to")


class AddLanguageForm(FlaskForm):
    """The language a new translation is written in."""

    language = StringField("Language code")


def _settings() -> MailSettings:
    return MailSettings.from_config(current_app.config)


def _default() -> str:
    return current_app.config["DEFAULT_LANGUAGE"]


def _template_or_404(template_id: int) -> EmailTemplate:
    try:
        return template_service.get_template(db.session, template_id)
    except NotFound:
        abort(404)


def _code_or_404(language: str) -> str:
    """A language code from the URL in its usual spelling; 404 for what is none."""
    try:
        code = languages.normalise(language)
    except languages.BadLanguage:
        abort(404)
    if not code:
        abort(404)
    return code


def _candidate(query: str, errors: dict[str, str]) -> Candidate:
    """The candidate asked for, else the first active one, else the built-in sample."""
    found = template_service.find_candidate(db.session, query)
    if found is None and query.strip():
        errors["candidate"] = f"no candidate's address starts with {query.strip()}"
        found = template_service.find_candidate(db.session, "")
    return found or template_service.sample_candidate()


def _preview(compiled: CompiledTemplate, candidate: Candidate) -> dict:
    """The mail as ``candidate`` would get it in the translation's language."""
    settings = _settings()
    tokens = Tokens(current_app.config["SECRET_KEY"], settings.base_url)
    mail = template_service.render_preview(compiled, settings, tokens, candidate)
    return {"mail": mail, "warning": template_service.subject_warning(mail)}


def _apply_errors(form: FlaskForm, errors: dict[str, str]) -> None:
    for field, message in errors.items():
        if field in form:
            form[field].errors = [*form[field].errors, message]
        else:
            flash(message, "error")


# --- a team template ---------------------------------------------------------------------------


@bp.get("/template/<int:template_id>")
@role_required(Role.VIEWER)
def template_languages(template_id: int):
    """The languages a team template is written in, and a way to add one."""
    template = _template_or_404(template_id)
    return _languages_page(template, AddLanguageForm())


def _languages_page(template: EmailTemplate, form: AddLanguageForm, status: int = 200):
    return render_template(
        "admin/translations/languages.html",
        template=template,
        starter=None,
        listed=translation_service.template_languages(template, _default()),
        default=_default(),
        form=form,
        suggestions=[code for code in languages.NAMES if code != _default()],
    ), status


@bp.post("/template/<int:template_id>/languages")
@role_required(Role.EDITOR)
def add_language(template_id: int):
    """Open the editor for a new translation (saved only when its editor is saved)."""
    template = _template_or_404(template_id)
    form = AddLanguageForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        code = translation_service.clean_language(form.language.data or "")
    except ValidationError as exc:
        _apply_errors(form, exc.fields)
        return _languages_page(template, form, status=422)
    if code == _default():
        form.language.errors = [
            f"{code} is the team's language: the template itself is written in it"
        ]
        return _languages_page(template, form, status=422)
    return redirect(
        url_for("admin.translations.edit_translation", template_id=template.id, language=code)
    )


@bp.get("/template/<int:template_id>/<language>")
@role_required(Role.VIEWER)
def edit_translation(template_id: int, language: str):
    """A translation in the editor (a new one starts as a copy of the template), previewed."""
    template = _template_or_404(template_id)
    code = _code_or_404(language)
    if code == _default():
        return redirect(url_for("admin.email_templates.edit_template", template_id=template.id))
    source = translation_service.translation_source(template, code, _default())
    form = TranslationForm(
        language=code,
        subject=source.subject,
        html=source.html,
        text=source.text,
        candidate=request.args.get("candidate"),
    )
    return _editor_page(template, code, form, source)


def _editor_page(
    template: EmailTemplate,
    code: str,
    form: TranslationForm,
    source: template_service.Source,
    errors: dict[str, str] | None = None,
    status: int = 200,
):
    errors = dict(errors or {})
    candidate = _candidate(form.candidate.data or "", errors)
    preview = None
    if not {"subject", "html", "text"} & set(errors):
        try:
            compiled = translation_service.compile_translation(
                template_library(current_app), _settings(), source, code
            )
            preview = _preview(compiled, candidate)
        except ValidationError as exc:
            errors.update(exc.fields)
    _apply_errors(form, errors)
    if errors and status == 200:
        status = 422
    return render_template(
        "admin/translations/editor.html",
        template=template,
        starter=None,
        code=code,
        name=translation_service.language_name(code),
        saved=translation_service.find_translation(template, code) is not None,
        editable=current_user.has_role(Role.EDITOR),
        form=form,
        preview=preview,
        candidate=candidate,
        variables=template_service.variables(current_app.config["COMPANY_NAME"]),
    ), status


@bp.post("/template/<int:template_id>/<language>")
@role_required(Role.EDITOR)
def save_translation(template_id: int, language: str):
    """Save, preview or test-send a translation, by the button pressed."""
    template = _template_or_404(template_id)
    code = _code_or_404(language)
    form = TranslationForm()
    if not form.validate_on_submit():
        abort(400)  # only the CSRF token is checked here; the service checks the rest
    form.language.data = code
    source = template_service.clean_source(form.html.data, form.text.data, form.subject.data)
    action = request.form.get("action", "save")
    if action == "preview":
        return _editor_page(template, code, form, source)
    if action == "test":
        return _test_send(template, code, form, source)
    try:
        translation_service.save_translation(
            db.session,
            template_library(current_app),
            _settings(),
            template,
            {**form.data, "language": code},
            user_id=current_user.id,
            now=runtime.now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        return _editor_page(template, code, form, source, errors=exc.fields)
    db.session.commit()
    flash(
        f"Saved {template.name} in {translation_service.language_name(code)}. Candidates "
        f"whose language is {code} get it from the next mail.",
        "success",
    )
    return redirect(
        url_for(
            "admin.translations.edit_translation",
            template_id=template.id,
            language=code,
            candidate=form.candidate.data or None,
        )
    )


@bp.post("/template/<int:template_id>/<language>/delete")
@role_required(Role.EDITOR)
def delete_translation(template_id: int, language: str):
    """Remove a translation: its readers get the team's language again."""
    template = _template_or_404(template_id)
    code = _code_or_404(language)
    form = AddLanguageForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        translation_service.delete_translation(db.session, template, code)
    except NotFound:
        abort(404)
    db.session.commit()
    flash(f"Deleted the {translation_service.language_name(code)} translation.", "success")
    return redirect(url_for("admin.translations.template_languages", template_id=template.id))


def _test_send(
    template: EmailTemplate | None,
    code: str,
    form: TranslationForm,
    source: template_service.Source,
    starter: str | None = None,
):
    """Send one "[Test]" mail of a translation for the chosen candidate; nothing is recorded."""
    errors: dict[str, str] = {}
    candidate = _candidate(form.candidate.data or "", errors)
    if not (form.to.data or "").strip():
        errors["to"] = "give the address to send the test to"

    def page(errors: dict[str, str] | None = None, status: int = 200):
        if starter is not None:
            return _starter_page(starter, code, form, source, errors=errors, status=status)
        assert template is not None
        return _editor_page(template, code, form, source, errors=errors, status=status)

    if errors:
        return page(errors)
    config = current_app.config
    try:
        compiled = translation_service.compile_translation(
            template_library(current_app), _settings(), source, code
        )
        mail = proofs.send_test(
            db.session,
            SmtpTransport(SmtpSettings.from_url(config["SMTP_URL"], config["SMTP_TIMEOUT"])),
            _settings(),
            compiled,
            candidate,
            form.to.data,
            runtime.now(),
            dkim=dkim_signer(current_app._get_current_object()),
        )
    except ValidationError as exc:
        return page(exc.fields)
    except DkimError as exc:
        flash(f"The test was not sent: DKIM is set up but unusable: {exc}", "error")
        return page(status=500)
    except proofs.TestSendFailed as exc:
        flash(f"The SMTP server did not take the test: {exc}", "error")
        return page(status=502)
    flash(
        f"Sent “[Test] {mail.subject}” to {form.to.data.strip()}, in "
        f"{translation_service.language_name(code)}. Test mails are not tracked, and their "
        "unsubscribe link does nothing.",
        "success",
    )
    return page()


# --- a starter ---------------------------------------------------------------------------------


def _starter_source_or_404(name: str, code: str) -> template_service.Source:
    try:
        return translation_service.starter_source(template_library(current_app), name, code)
    except NotFound:
        abort(404)


@bp.get("/starter/<name>")
@role_required(Role.VIEWER)
def starter_languages(name: str):
    """The languages a starter file is written in."""
    _starter_source_or_404(name, "en")
    return render_template(
        "admin/translations/languages.html",
        template=None,
        starter=name,
        listed=translation_service.starter_languages(template_library(current_app), name),
        default=_default(),
        form=None,
        suggestions=[],
    )


@bp.get("/starter/<name>/<language>")
@role_required(Role.VIEWER)
def starter_translation(name: str, language: str):
    """A starter in one language, read-only, previewed for a candidate."""
    code = _code_or_404(language)
    source = _starter_source_or_404(name, code)
    form = TranslationForm(
        language=code, html=source.html, text=source.text, candidate=request.args.get("candidate")
    )
    return _starter_page(name, code, form, source)


def _starter_page(
    name: str,
    code: str,
    form: TranslationForm,
    source: template_service.Source,
    errors: dict[str, str] | None = None,
    status: int = 200,
):
    errors = dict(errors or {})
    candidate = _candidate(form.candidate.data or "", errors)
    compiled = template_library(current_app).compile(
        source.html, source.text or None, language=code
    )
    preview = _preview(compiled, candidate)
    _apply_errors(form, errors)
    if errors and status == 200:
        status = 422
    return render_template(
        "admin/translations/editor.html",
        template=None,
        starter=name,
        code=code,
        name=translation_service.language_name(code),
        saved=True,
        editable=False,
        form=form,
        preview=preview,
        candidate=candidate,
        variables=[],
    ), status


@bp.post("/starter/<name>/<language>/test")
@role_required(Role.EDITOR)
def test_starter(name: str, language: str):
    """Send a test of a starter in one language for the chosen candidate."""
    code = _code_or_404(language)
    source = _starter_source_or_404(name, code)
    form = TranslationForm()
    if not form.validate_on_submit():
        abort(400)
    form.language.data, form.html.data, form.text.data = code, source.html, source.text
    return _test_send(None, code, form, source, starter=name)
