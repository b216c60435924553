"""Admin pages: the campaign list, the drip builder, status changes and a campaign's analytics."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.routing import BuildError
from wtforms import BooleanField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from nurture.admin.auth import role_required
from nurture.admin.blueprint import bp
from nurture.extensions import db
from nurture.models import Campaign, CampaignStatus, EntryType, Role, Tag
from nurture.services import analytics
from nurture.services import campaigns as campaign_service
from nurture.services.errors import Conflict, ValidationError
from nurture.services.preferences import rating_summary
from nurture.tasks.sending import template_library

PER_PAGE = 25
FUNNEL = ("sent", "opened", "clicked", "unsubscribed", "bounced")
_STEP_KEY = re.compile(r"steps-(\d+)-(\w+)")
_STEP_ERROR = re.compile(r"steps\[(\d+)\](?:\.(\w+))?")
# Service error keys → the builder field that shows them.
_FORM_FIELDS = {
    "name": "name",
    "description": "description",
    "entry": "entry_type",
    "entry.ats_event": "entry_type",
    "entry.tag": "entry_tag",
    "exit_on": "exit_reapplied",
    "sender": "sender_email",
    "sender.email": "sender_email",
}
_STEP_FIELDS = {"html": "template", "text": "template"}
DONE = {
    "activate": "is active",
    "resume": "is running again",
    "pause": "is paused",
    "archive": "is archived",
}


def _now():
    return current_app.extensions["nurture.clock"].now()


class CampaignForm(FlaskForm):
    """The drip's own fields; its steps are parsed from ``steps-<n>-<field>`` inputs."""

    name = StringField("Name")
    description = TextAreaField("Description")
    entry_type = RadioField(
        "Who enters",
        choices=[
            SelectChoice(EntryType.TAG.value, "Candidates who get a tag"),
            SelectChoice(EntryType.ATS_EVENT.value, "Candidates the ATS rejects"),
            SelectChoice(EntryType.MANUAL.value, "Only candidates enrolled by hand"),
        ],
        default=EntryType.TAG.value,
    )
    entry_tag = StringField("Tag")
    exit_reapplied = BooleanField("They apply again", default=True)
    sender_mode = RadioField(
        "Mail comes from",
        choices=[
            SelectChoice("recruiter", "The candidate's recruiter, when they have one"),
            SelectChoice("team", "Always the team address"),
        ],
        default="recruiter",
    )
    sender_name = StringField("Team sender name")
    sender_email = StringField("Team sender email")


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def _candidate_url(candidate_id: int) -> str | None:
    try:
        return url_for("admin.candidate", candidate_id=candidate_id)
    except BuildError:  # the candidate pages are not there (yet)
        return None


def _blank_step() -> dict[str, Any]:
    return {"id": None, "delay_amount": "3", "delay_unit": "days", "delay": "", "template": "",
            "subject": "", "condition": ""}


def _steps_of(campaign: Campaign) -> list[dict[str, Any]]:
    """A saved campaign's steps as the builder shows them."""
    steps = []
    for step in campaign.steps:
        parts = campaign_service.delay_parts(step.delay_seconds)
        amount, unit = parts if parts else ("", "iso")
        template = step.template or (campaign_service.OWN_HTML if step.html else "")
        steps.append({"id": step.id, "delay_amount": str(amount), "delay_unit": unit,
                      "delay": step.delay if unit == "iso" else "", "template": template,
                      "subject": step.subject, "condition": step.condition})
    return steps


def _steps_posted() -> list[dict[str, Any]]:
    """The steps as posted, in the order their fields were numbered."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in request.form.items():
        match = _STEP_KEY.fullmatch(key)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = value.strip()
    steps = []
    for index in sorted(found):
        raw = found[index]
        step = _blank_step() | {k: raw.get(k, "") for k in _blank_step() if k != "id"}
        step["id"] = int(raw["id"]) if raw.get("id", "").isdigit() else None
        if step["delay_unit"] != "iso":
            step["delay"] = ""
        steps.append(step)
    return steps


def _rearrange(steps: list[dict[str, Any]], action: str) -> tuple[list[dict[str, Any]], int]:
    """Apply an add/remove/up/down button to the steps; returns them and the step to show."""
    verb, _, number = action.partition(":")
    index = int(number) if number.isdigit() else -1
    if verb == "add":
        steps.append(_blank_step())
        return steps, len(steps) - 1
    if not 0 <= index < len(steps):
        return steps, 0
    if verb == "remove":
        steps.pop(index)
        return steps, max(0, index - 1)
    other = index - 1 if verb == "up" else index + 1
    if verb in ("up", "down") and 0 <= other < len(steps):
        steps[index], steps[other] = steps[other], steps[index]
        return steps, other
    return steps, index


def _payload(
    campaign: Campaign | None, form: CampaignForm, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """The builder's fields in the shape ``save_drip`` takes."""
    entry: dict[str, str] | None = None
    if form.entry_type.data == EntryType.TAG:
        entry = {"tag": form.entry_tag.data or ""}
    elif form.entry_type.data == EntryType.ATS_EVENT:
        entry = {"ats_event": "candidate.rejected"}
    elif form.entry_type.data == EntryType.SEGMENT and campaign is not None:
        entry = {"segment_id": campaign.entry_value}
    return {
        "name": form.name.data,
        "description": form.description.data,
        "entry": entry,
        # A hired candidate is never mailed, so "hired" is always an exit rule.
        "exit_on": ["hired", *(["reapplied"] if form.exit_reapplied.data else [])],
        "sender": {"name": form.sender_name.data, "email": form.sender_email.data,
                   "use_recruiter": form.sender_mode.data == "recruiter"},
        "steps": [
            {**step, "condition": step["condition"] if index else ""}
            for index, step in enumerate(steps)
        ],
    }


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _place_errors(
    form: CampaignForm, steps: list[dict[str, Any]], fields: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Put each service error at its field; returns those about all steps, and the rest."""
    general, about_steps = [], []
    for key, problem in fields.items():
        problem = _sentence(problem)
        match = _STEP_ERROR.fullmatch(key)
        if key == "steps":
            about_steps.append(problem)
        elif key in _FORM_FIELDS:
            getattr(form, _FORM_FIELDS[key]).errors = [problem]
        elif match and int(match[1]) < len(steps):
            field = match[2] or "step"
            steps[int(match[1])].setdefault("errors", {})[_STEP_FIELDS.get(field, field)] = problem
        else:
            general.append(problem)
    return about_steps, general


def _render_builder(
    campaign: Campaign | None,
    form: CampaignForm,
    steps: list[dict[str, Any]],
    *,
    errors: tuple[list[str], list[str]] | None = None,
    status: int = 200,
):
    library = template_library(current_app)
    locks = campaign_service.step_message_counts(db.session, campaign) if campaign else {}
    for step in steps:
        step["sent"] = locks.get(step["id"] or 0, 0)
    tags = db.session.scalars(select(Tag.name).order_by(Tag.name)).all()
    return render_template(
        "admin/campaigns/builder.html",
        campaign=campaign,
        form=form,
        steps=steps,
        steps_errors=errors[0] if errors else [],
        general=errors[1] if errors else [],
        invalid=status >= 400,
        templates=campaign_service.template_names(db.session, library),
        conditions=[
            ("", "Always"),
            ("previous_not_opened", "Only if the previous mail was not opened"),
            ("previous_opened", "Only if the previous mail was opened"),
            ("previous_clicked", "Only if a link in the previous mail was clicked"),
        ],
        tags=tags,
        default_sender=(current_app.config["SENDER_NAME"], current_app.config["SENDER_EMAIL"]),
    ), status


def _form(campaign: Campaign | None, data: dict[str, Any] | None = None) -> CampaignForm:
    form = CampaignForm(data=data)
    if campaign is not None and campaign.entry_type == EntryType.SEGMENT:
        # Segments are chosen through the API for now; the builder keeps the one it has.
        form.entry_type.choices = [
            *form.entry_type.choices,
            SelectChoice(EntryType.SEGMENT.value, f"Segment #{campaign.entry_value}"),
        ]
    return form


def _builder(campaign: Campaign | None):
    """Show, rearrange or save the builder for a new or existing drip."""
    if campaign is not None and campaign.status == CampaignStatus.ARCHIVED:
        flash("An archived campaign cannot be edited.", "error")
        return redirect(url_for("admin.campaign", campaign_id=campaign.id))
    if request.method == "GET":
        form = _form(campaign)
        steps = [_blank_step()]
        if campaign is not None:
            form = _form(campaign, {
                "name": campaign.name,
                "description": campaign.description,
                "entry_type": campaign.entry_type,
                "entry_tag": campaign.entry_value if campaign.entry_type == EntryType.TAG else "",
                "exit_reapplied": "reapplied" in campaign.exit_on,
                "sender_mode": "recruiter" if campaign.sender_is_recruiter else "team",
                "sender_name": campaign.sender_name,
                "sender_email": campaign.sender_email,
            })
            steps = _steps_of(campaign)
        return _render_builder(campaign, form, steps)

    form = _form(campaign)
    steps = _steps_posted()
    action = request.form.get("action", "save")
    if action != "save":
        # Add, remove and move work without JavaScript: the page comes back rearranged, unsaved.
        steps, _ = _rearrange(steps, action)
        return _render_builder(campaign, form, steps)
    if not form.validate():
        return _render_builder(campaign, form, steps, status=400)
    try:
        saved = campaign_service.save_drip(
            db.session, campaign, _payload(campaign, form, steps), template_library(current_app),
            _now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        errors = _place_errors(form, steps, exc.fields)
        return _render_builder(campaign, form, steps, errors=errors, status=422)
    except Conflict as exc:
        db.session.rollback()
        flash(_sentence(str(exc)) + ".", "error")
        return redirect(url_for("admin.campaigns"))
    db.session.commit()
    flash(f"“{saved.name}” saved." if campaign else f"“{saved.name}” saved as a draft.",
          "success")
    return redirect(url_for("admin.campaign", campaign_id=saved.id))


@bp.get("/campaigns")
@role_required(Role.VIEWER)
def campaigns():
    """Every campaign with its status, entry, steps, enrolments and the last week's sends."""
    status = request.args.get("status", "")
    if status not in set(CampaignStatus):
        status = ""
    return render_template(
        "admin/campaigns/list.html",
        rows=analytics.campaign_overview(db.session, _now(), status or None),
        counts=analytics.status_counts(db.session),
        status=status,
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def campaign_new():
    """Build a new drip; it is saved as a draft."""
    return _builder(None)


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def campaign_edit(campaign_id: int):
    """Change a drip; steps that already sent mail stay in place."""
    return _builder(_campaign_or_404(campaign_id))


@bp.get("/campaigns/<int:campaign_id>")
@role_required(Role.VIEWER)
def campaign(campaign_id: int):
    """A campaign: its setup, the funnel per step, sends over time and its enrolments."""
    campaign = _campaign_or_404(campaign_id)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    stats = campaign_service.campaign_stats(db.session, campaign)
    series = analytics.daily_series(db.session, _now(), 30, campaign.id)
    enrolments, total = campaign_service.enrolments_page(db.session, campaign, page, PER_PAGE)
    first = (page - 1) * PER_PAGE
    pager = SimpleNamespace(
        summary=(f"{first + 1}–{first + len(enrolments)} of {total}" if enrolments
                 else f"{total} enrolments"),
        prev_url=url_for("admin.campaign", campaign_id=campaign.id, page=page - 1,
                         _anchor="enrolments") if page > 1 else None,
        next_url=url_for("admin.campaign", campaign_id=campaign.id, page=page + 1,
                         _anchor="enrolments") if first + PER_PAGE < total else None,
    )
    funnel_chart = {
        "type": "bar",
        "labels": [f"Step {row['position'] + 1}" for row in stats],
        "series": [[name, [row[name] for row in stats]] for name in FUNNEL],
    }
    time_chart = {
        "type": "line",
        "labels": [day["day"] for day in series],
        "series": [[name, [day[name] for day in series]] for name in ("sent", "opened", "clicked")],
    }
    return render_template(
        "admin/campaigns/detail.html",
        campaign=campaign,
        funnel=list(zip(campaign.steps, stats, strict=True)),
        ratings=rating_summary(db.session, campaign.id),
        enrolled=analytics.enrolment_counts(db.session, campaign.id),
        funnel_chart=funnel_chart,
        time_chart=time_chart,
        enrolments=enrolments,
        pager=pager,
        candidate_url=_candidate_url,
        actions=[a for a in campaign_service.ACTIONS
                 if not campaign_service.action_problem(campaign, a)],
    )


@bp.route(
    "/campaigns/<int:campaign_id>/<any(activate, pause, resume, archive):action>",
    methods=["GET", "POST"],
)
@role_required(Role.EDITOR)
def campaign_status(campaign_id: int, action: str):
    """Confirm a status change with how many candidates it affects, then apply it."""
    campaign = _campaign_or_404(campaign_id)
    impact = campaign_service.status_change_impact(db.session, campaign, action)
    back = url_for("admin.campaign", campaign_id=campaign.id)
    if impact["problem"]:
        flash(_sentence(impact["problem"]) + ".", "error")
        return redirect(back)
    if request.method == "GET":
        return render_template(
            "admin/campaigns/confirm.html", campaign=campaign, action=action, impact=impact
        )
    try:
        campaign_service.apply_action(db.session, campaign, action, _now())
    except Conflict as exc:
        db.session.rollback()
        flash(_sentence(str(exc)) + ".", "error")
        return redirect(back)
    db.session.commit()
    detail = ""
    if action in ("activate", "resume") and impact["entering"]:
        detail = f" {analytics.plural(impact['entering'], 'candidate')} with the tag entered it."
    elif action == "archive" and impact["active_enrolments"]:
        detail = f" {analytics.plural(impact['active_enrolments'], 'enrolment')} ended."
    flash(f"“{campaign.name}” {DONE[action]}.{detail}", "success")
    return redirect(back)
