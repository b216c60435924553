"""Admin page: the suppression list — counts by reason, check an address, add addresses."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from nurture import runtime
from nurture.core import csvfiles
from nurture.core.addresses import normalise_email
from nurture.core.compliance import suppressions as suppression_service
from nurture.core.errors import ValidationError
from nurture.extensions import db
from nurture.models import Role
from nurture.web.admin.access import role_required

bp = Blueprint("suppressions", __name__, template_folder="templates")

REASON_LABELS = {
    "unsubscribed": "Unsubscribed",
    "bounced": "Bounced",
    "complained": "Complained (marked as spam)",
    "manual": "Manual (do not contact)",
}
# The longest list of rejected lines shown on the page; the counts cover them all.
SHOWN_REJECTED = 200


class AddForm(FlaskForm):
    """Addresses to suppress, pasted or as a CSV export, with the reason."""

    addresses = TextAreaField("Addresses")
    file = FileField(
        "Or a CSV file",
        validators=[FileAllowed(["csv", "txt"], "Upload a .csv or .txt file.")],
    )
    reason = SelectField(
        "Reason",
        choices=[SelectChoice(value, label) for value, label in REASON_LABELS.items()],
        default="manual",
    )


class CheckForm(FlaskForm):
    """Look one address up (a GET form: it changes nothing)."""

    class Meta:
        csrf = False

    email = StringField("Email address")


def _sentence(text: str) -> str:
    """A service message as a sentence: capital first letter, final full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _render(add_form: AddForm, report: suppression_service.Report | None = None, status: int = 200):
    check_form = CheckForm(request.args)
    checked = None
    email = (check_form.email.data or "").strip()
    if email:
        try:
            checked = {
                "email": normalise_email(email),
                "found": suppression_service.lookup(db.session, email),
            }
        except ValidationError as exc:
            check_form.email.errors = [_sentence(p) for p in exc.fields.values()] or [exc.message]
    return render_template(
        "admin/suppressions/index.html",
        counts=suppression_service.counts(db.session),
        add_form=add_form,
        check_form=check_form,
        checked=checked,
        report=report,
        shown_rejected=SHOWN_REJECTED,
    ), status


@bp.get("")
@role_required(Role.VIEWER)
def suppressions():
    """Counts by reason, a lookup of one address, and (for editors) a form to add addresses."""
    return _render(AddForm())


@bp.post("")
@role_required(Role.EDITOR)
def suppressions_add():
    """Suppress pasted addresses or a CSV export's addresses; shows the report."""
    form = AddForm()
    if not form.validate():
        return _render(form, status=400)
    upload = form.file.data
    text = form.addresses.data or ""
    has_file = bool(upload and upload.filename)
    if has_file and text.strip():
        form.file.errors = ["Paste addresses or choose a file, not both."]
        return _render(form, status=400)
    if not has_file and not text.strip():
        form.addresses.errors = ["Paste at least one address, or choose a CSV file."]
        return _render(form, status=400)
    try:
        if has_file:
            data = upload.stream.read(csvfiles.MAX_BYTES + 1)
            report = suppression_service.add_csv(db.session, data, form.reason.data, runtime.now())
        else:
            report = suppression_service.add_addresses(
                db.session, text, form.reason.data, runtime.now()
            )
    except ValidationError as exc:
        db.session.rollback()
        for name, problem in exc.fields.items():
            target = {"emails": form.addresses}.get(name) or getattr(form, name, form.addresses)
            target.errors = [_sentence(problem)]
        return _render(form, status=422)
    db.session.commit()
    # A fresh form: sending the same list again would only count them as already suppressed.
    return _render(AddForm(formdata=None, reason=report.reason), report)
