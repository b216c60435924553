"""Admin pages: the campaign list, the drip builder, status changes and a campaign's analytics."""

from __future__ import annotations

import re
from datetime import datetime
from types import SimpleNamespace
from typing import Any

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
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from werkzeug.routing import BuildError
from wtforms import (
    BooleanField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import CheckboxInput, ListWidget

from nurture import runtime
from nurture.core.audience import segments as segment_service
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.durations import parse_delay
from nurture.core.campaigns.entries import entry_segment_id, segment_rules
from nurture.core.campaigns.entry_rules import entry_delay
from nurture.core.campaigns.timing import DAYS, Timing
from nurture.core.errors import Conflict, ValidationError
from nurture.core.feedback import analytics
from nurture.core.feedback.ratings import rating_summary, recent_comments
from nurture.extensions import db
from nurture.models import (
    AtsEventType,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    EntryType,
    ExitRule,
    Message,
    MessageState,
    Reentry,
    Role,
    Segment,
    StepCondition,
    Tag,
    Topic,
)
from nurture.tasks.sending import template_library
from nurture.web.admin import mail as mail_helpers
from nurture.web.admin.access import role_required

bp = Blueprint("campaigns", __name__, template_folder="templates")

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
    "topic": "topic",
    "reentry": "reentry",
    "send_window": "window_mode",
    "send_window.days": "window_days",
    "send_window.start": "window_start",
    "send_window.end": "window_end",
    "entry_filter": "entry_reasons",
    "entry_filter.rejection_reasons": "entry_reasons",
    "entry_filter.stages": "entry_stages",
    "entry_filter.delay": "entry_delay_amount",
}
TOPIC_LABELS = {topic.value: topic.label for topic in Topic}
REENTRY_LABELS = {
    Reentry.NEVER.value: "Never: once through this drip is enough",
    Reentry.AFTER_EXIT.value: "Yes, once their earlier run has ended",
    Reentry.ALWAYS.value: "Yes, every time: a new entry restarts the drip",
}
DAY_NAMES = {
    "mon": "Mon",
    "tue": "Tue",
    "wed": "Wed",
    "thu": "Thu",
    "fri": "Fri",
    "sat": "Sat",
    "sun": "Sun",
}
_STEP_FIELDS = {"html": "template", "text": "template"}
DONE = {
    "activate": "is active",
    "resume": "is running again",
    "pause": "is paused",
    "archive": "is archived",
}


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
    entry_segment = SelectField("Also enters: candidates in a segment", validate_choice=False)
    exclusive = BooleanField("One rejection follow-up per rejection", default=True)
    exit_reapplied = BooleanField("They apply again", default=True)
    exit_replied = BooleanField("They reply to one of its mails", default=True)
    exit_left_segment = BooleanField("They no longer match the entry segment", default=True)
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
    # The choices below are checked by the campaign service, which names the field at fault.
    topic = SelectField(
        "Preference topic",
        choices=[SelectChoice(key, label) for key, label in TOPIC_LABELS.items()],
        default=Topic.CHECKINS.value,
        validate_choice=False,
    )
    reentry = RadioField(
        "Entering again",
        choices=[SelectChoice(key, label) for key, label in REENTRY_LABELS.items()],
        default=Reentry.AFTER_EXIT.value,
        validate_choice=False,
    )
    entry_reasons = StringField("Only these rejection reasons")
    entry_stages = StringField("Only candidates who reached these stages")
    entry_delay_amount = StringField("Extra wait after entering")
    entry_delay_unit = SelectField(
        "Unit of the extra wait",
        choices=[SelectChoice("days", "days"), SelectChoice("hours", "hours")],
        default="days",
        validate_choice=False,
    )
    entry_delay = StringField()  # a delay set through the API that neither unit shows
    window_mode = RadioField(
        "When mail goes out",
        choices=[
            SelectChoice("any", "Any time"),
            SelectChoice("window", "Only on these days, between these hours"),
        ],
        default="any",
        validate_choice=False,
    )
    window_days = SelectMultipleField(
        "Days",
        choices=[SelectChoice(day, label) for day, label in DAY_NAMES.items()],
        default=["mon", "tue", "wed", "thu", "fri"],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=False,
    )
    window_start = StringField("From", default="09:00")
    window_end = StringField("Until", default="17:00")


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def _candidate_url(candidate_id: int) -> str | None:
    try:
        return url_for("admin.candidates.candidate", candidate_id=candidate_id)
    except BuildError:  # the candidate pages are not there (yet)
        return None


def _blank_step() -> dict[str, Any]:
    return {
        "id": None,
        "delay_amount": "3",
        "delay_unit": "days",
        "delay": "",
        "template": "",
        "subject": "",
        "condition": "",
        "category": "",
        "require_strengths": "",
    }


def _steps_of(campaign: Campaign) -> list[dict[str, Any]]:
    """A saved campaign's steps as the builder shows them."""
    steps = []
    for step in campaign.steps:
        parts = campaign_service.delay_parts(step.delay_seconds)
        amount, unit = parts if parts else ("", "iso")
        template = step.template or (campaign_service.OWN_HTML if step.html else "")
        steps.append(
            {
                "id": step.id,
                "delay_amount": str(amount),
                "delay_unit": unit,
                "delay": step.delay if unit == "iso" else "",
                "template": template,
                "subject": step.subject,
                "condition": step.condition,
                "category": step.category,
                "require_strengths": "on" if step.require_strengths else "",
            }
        )
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
        entry = {"ats_event": AtsEventType.REJECTED.value}
    elif form.entry_type.data == EntryType.SEGMENT and campaign is not None:
        entry = {"segment_id": campaign.entry_value}
    payload: dict[str, Any] = {
        "name": form.name.data,
        "description": form.description.data,
        "entry": entry,
        "exit_on": _exit_rules(form),
        "sender": {
            "name": form.sender_name.data,
            "email": form.sender_email.data,
            "use_recruiter": form.sender_mode.data == "recruiter",
        },
        "steps": [
            {**step, "condition": step["condition"] if index else ""}
            for index, step in enumerate(steps)
        ],
    }
    # Fields missing from the post (an older page, a script) keep what the campaign has.
    if request.form.get("exclusive_shown"):
        kept = campaign.exclusive_group if campaign is not None else ""
        if form.entry_type.data == EntryType.ATS_EVENT:
            payload["exclusive_group"] = (
                campaign_service.REJECTION_GROUP if form.exclusive.data else ""
            )
        else:  # a group set through the API stays; the rejection group is for rejections
            payload["exclusive_group"] = "" if kept == campaign_service.REJECTION_GROUP else kept
    if request.form.get("entry_segment_shown"):
        payload["entry_segment_id"] = form.entry_segment.data or None
    if form.topic.raw_data:
        payload["topic"] = form.topic.data
    if form.reentry.raw_data:
        payload["reentry"] = form.reentry.data
    if form.window_mode.raw_data:
        payload["send_window"] = _window_posted(form)
    if form.entry_reasons.raw_data:
        payload["entry_filter"] = {
            "rejection_reasons": _listed(form.entry_reasons.data),
            "stages": _listed(form.entry_stages.data),
            "delay_amount": form.entry_delay_amount.data or "",
            "delay_unit": form.entry_delay_unit.data,
            "delay": form.entry_delay.data or "",
        }
    return payload


def _exit_rules(form: CampaignForm) -> list[ExitRule]:
    """The ticked exit rules; a hired candidate is never mailed, so "hired" always is one."""
    ticked = {
        ExitRule.REAPPLIED: form.exit_reapplied.data,
        ExitRule.REPLIED: form.exit_replied.data,
        ExitRule.LEFT_SEGMENT: form.exit_left_segment.data,
    }
    return [ExitRule.HIRED, *(rule for rule, on in ticked.items() if on)]


def _listed(text: str | None) -> list[str]:
    """A comma-separated field as its items."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _window_posted(form: CampaignForm) -> dict[str, Any]:
    """The send window as the API takes it; {} for any time."""
    if form.window_mode.data != "window":
        return {}
    window: dict[str, Any] = {}
    days = form.window_days.data or []
    if set(days) != set(DAYS):  # all seven: every day, the window's default
        window["days"] = days
    for key, field in (("start", form.window_start), ("end", form.window_end)):
        value = (field.data or "").strip()
        if value:  # left empty: from or until midnight
            window[key] = value[:5] if len(value) == 8 and value.endswith(":00") else value
    return window


def _window_form(window: dict[str, Any]) -> dict[str, Any]:
    """A stored send window as the builder's fields."""
    if not window:
        return {"window_mode": "any"}
    end = window.get("end", "")
    return {
        "window_mode": "window",
        "window_days": window.get("days") or list(DAYS),
        "window_start": window.get("start", ""),
        "window_end": "" if end == "24:00" else end,  # empty: until midnight
    }


def _entry_filter_form(entry_filter: dict[str, Any]) -> dict[str, Any]:
    """A stored entry filter as the builder's fields."""
    delay = entry_filter.get("delay") or ""
    parts = campaign_service.delay_parts(int(parse_delay(delay).total_seconds())) if delay else None
    amount, unit = parts if parts else ("", "iso" if delay else "days")
    return {
        "entry_reasons": ", ".join(entry_filter.get("rejection_reasons") or []),
        "entry_stages": ", ".join(entry_filter.get("stages") or []),
        "entry_delay_amount": str(amount),
        "entry_delay_unit": unit,
        "entry_delay": delay if unit == "iso" else "",
    }


def _days_text(days: list[str]) -> str:
    """``["mon", …, "fri"]`` → ``Mon–Fri``; runs of three or more days joined by a dash."""
    runs: list[list[int]] = []
    for index in sorted(DAYS.index(day) for day in days if day in DAYS):
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    parts = []
    for run in runs:
        names = [DAY_NAMES[DAYS[i]] for i in run]
        parts.append(f"{names[0]}–{names[-1]}" if len(run) > 2 else ", ".join(names))
    return ", ".join(parts)


def window_text(window: dict[str, Any] | None) -> str:
    """A send window as a recruiter reads it: ``Mon–Fri, 09:00–17:00``."""
    if not window:
        return "Any time"
    days = window.get("days") or list(DAYS)
    when = "Every day" if len(days) == len(DAYS) else _days_text(days)
    start, end = window.get("start", "00:00"), window.get("end", "24:00")
    if (start, end) == ("00:00", "24:00"):
        return f"{when}, all day"
    return f"{when}, {start}–{end}"


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
        rejection_group=campaign_service.REJECTION_GROUP,
        campaign=campaign,
        form=form,
        steps=steps,
        steps_errors=errors[0] if errors else [],
        general=errors[1] if errors else [],
        invalid=status >= 400,
        templates=campaign_service.template_names(db.session, library),
        conditions=[
            ("", "Always"),
            (StepCondition.PREVIOUS_NOT_OPENED.value, "Only if the previous mail was not opened"),
            (StepCondition.PREVIOUS_OPENED.value, "Only if the previous mail was opened"),
            (
                StepCondition.PREVIOUS_CLICKED.value,
                "Only if a link in the previous mail was clicked",
            ),
        ],
        tags=tags,
        default_sender=(current_app.config["SENDER_NAME"], current_app.config["SENDER_EMAIL"]),
        team_zone=current_app.config.get("TEAM_TIMEZONE") or "UTC",
    ), status


def _form(campaign: Campaign | None, data: dict[str, Any] | None = None) -> CampaignForm:
    form = CampaignForm(data=data)
    segments = db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name)).all()
    form.entry_segment.choices = [SelectChoice("", "Nobody more")] + [
        SelectChoice(str(segment_id), name) for segment_id, name in segments
    ]
    if campaign is not None and campaign.entry_type == EntryType.SEGMENT:
        # Segments are chosen through the API for now; the builder keeps the one it has.
        form.entry_type.choices = [
            *form.entry_type.choices,
            SelectChoice(EntryType.SEGMENT.value, f"Segment #{campaign.entry_value}"),
        ]
    return form


def _stored_form(campaign: Campaign) -> dict[str, Any]:
    """A stored drip as the builder's fields."""
    return {
        "name": campaign.name,
        "description": campaign.description,
        "entry_type": campaign.entry_type,
        "entry_tag": campaign.entry_value if campaign.entry_type == EntryType.TAG else "",
        "exit_reapplied": ExitRule.REAPPLIED in campaign.exit_on,
        "exit_replied": ExitRule.REPLIED in campaign.exit_on,
        "exit_left_segment": ExitRule.LEFT_SEGMENT in campaign.exit_on,
        "entry_segment": str(campaign.entry_segment_id or ""),
        "exclusive": campaign.exclusive_group == campaign_service.REJECTION_GROUP,
        "sender_mode": "recruiter" if campaign.sender_is_recruiter else "team",
        "sender_name": campaign.sender_name,
        "sender_email": campaign.sender_email,
        "topic": campaign.topic,
        "reentry": campaign.reentry,
        **_window_form(campaign.send_window or {}),
        **_entry_filter_form(campaign.entry_filter or {}),
    }


def _builder(campaign: Campaign | None):
    """Show, rearrange or save the builder for a new or existing drip."""
    if campaign is not None and campaign.status == CampaignStatus.ARCHIVED:
        flash("An archived campaign cannot be edited.", "error")
        return redirect(url_for("admin.campaigns.campaign", campaign_id=campaign.id))
    if campaign is not None and campaign.kind == CampaignKind.BROADCAST:
        flash("A broadcast is one mail, not a drip: it is not changed in the drip builder.", "info")
        return redirect(url_for("admin.broadcasts.broadcast", broadcast_id=campaign.id))
    if request.method == "GET":
        form = _form(campaign)
        steps = [_blank_step()]
        if campaign is not None:
            form = _form(campaign, _stored_form(campaign))
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
            db.session,
            campaign,
            _payload(campaign, form, steps),
            template_library(current_app),
            runtime.now(),
        )
    except ValidationError as exc:
        db.session.rollback()
        errors = _place_errors(form, steps, exc.fields)
        return _render_builder(campaign, form, steps, errors=errors, status=422)
    except Conflict as exc:
        db.session.rollback()
        flash(_sentence(str(exc)) + ".", "error")
        return redirect(url_for("admin.campaigns.campaigns"))
    db.session.commit()
    flash(f"“{saved.name}” saved." if campaign else f"“{saved.name}” saved as a draft.", "success")
    return redirect(url_for("admin.campaigns.campaign", campaign_id=saved.id))


@bp.get("")
@role_required(Role.VIEWER)
def campaigns():
    """Every campaign with its status, entry, steps, enrolments and the last week's sends."""
    status = request.args.get("status", "")
    if status not in set(CampaignStatus):
        status = ""
    # Broadcasts and job alerts have pages of their own; this list is the drips.
    rows = [
        row
        for row in analytics.campaign_overview(db.session, runtime.now(), status or None)
        if row["campaign"].kind == CampaignKind.DRIP
    ]
    counts = dict(
        db.session.execute(
            select(Campaign.status, func.count())
            .where(Campaign.kind == CampaignKind.DRIP)
            .group_by(Campaign.status)
        ).all()
    )
    return render_template(
        "admin/campaigns/list.html",
        rows=rows,
        counts=counts,
        status=status,
        segment_names=_segment_names(),
    )


def _segment_names() -> dict[str, str]:
    """Segment id (as the entry stores it) -> name."""
    return {str(i): n for i, n in db.session.execute(select(Segment.id, Segment.name)).all()}


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def campaign_new():
    """Build a new drip; it is saved as a draft."""
    return _builder(None)


@bp.route("/<int:campaign_id>/edit", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def campaign_edit(campaign_id: int):
    """Change a drip; steps that already sent mail stay in place."""
    return _builder(_campaign_or_404(campaign_id))


@bp.get("/<int:campaign_id>")
@role_required(Role.VIEWER)
def campaign(campaign_id: int):
    """A campaign: its setup, the funnel per step, sends over time and its enrolments."""
    campaign = _campaign_or_404(campaign_id)
    if campaign.kind == CampaignKind.BROADCAST:
        return redirect(url_for("admin.broadcasts.broadcast", broadcast_id=campaign.id))
    # Bounded: a page number of 30 digits is no page, not an OFFSET the database overflows on.
    page = min(max(1, request.args.get("page", 1, type=int) or 1), 1_000_000)
    stats = campaign_service.campaign_stats(db.session, campaign)
    series = analytics.daily_series(db.session, runtime.now(), 30, campaign.id)
    enrolments, total = campaign_service.enrolments_page(db.session, campaign, page, PER_PAGE)
    first = (page - 1) * PER_PAGE
    pager = SimpleNamespace(
        summary=(
            f"{first + 1}–{first + len(enrolments)} of {total}"
            if enrolments
            else f"{total} enrolments"
        ),
        prev_url=url_for(
            "admin.campaigns.campaign", campaign_id=campaign.id, page=page - 1, _anchor="enrolments"
        )
        if page > 1
        else None,
        next_url=url_for(
            "admin.campaigns.campaign", campaign_id=campaign.id, page=page + 1, _anchor="enrolments"
        )
        if first + PER_PAGE < total
        else None,
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
    now = runtime.now()
    page_enrolments = [row.Enrolment for row in enrolments]
    return render_template(
        "admin/campaigns/detail.html",
        campaign=campaign,
        funnel=list(zip(campaign.steps, stats, strict=True)),
        ratings=rating_summary(db.session, campaign.id),
        comments=recent_comments(db.session, campaign.id),
        waiting=campaign_service.waiting(db.session, now, campaign_id=campaign.id),
        outlooks=campaign_service.outlooks(db.session, page_enrolments),
        held=_held_by_enrolment(page_enrolments, now),
        segment_names=_segment_names(),
        overlap=campaign_service.overlaps(db.session, campaign, now)
        if campaign.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
        else [],
        enrolled=analytics.enrolment_counts(db.session, campaign.id),
        funnel_chart=funnel_chart,
        time_chart=time_chart,
        enrolments=enrolments,
        pager=pager,
        candidate_url=_candidate_url,
        actions=[
            a for a in campaign_service.ACTIONS if not campaign_service.action_problem(campaign, a)
        ],
        window=window_text(campaign.send_window),
        topics=TOPIC_LABELS,
        reentry=REENTRY_LABELS,
        entry_wait=int(entry_delay(campaign).total_seconds()),
    )


def _held_by_enrolment(enrolments: list[Any], now: datetime) -> dict[int, Message]:
    """The queued mail each of these enrolments waits on, when it is held for later."""
    ids = [e.id for e in enrolments]
    if not ids:
        return {}
    return {
        message.enrolment_id: message
        for message in db.session.scalars(
            select(Message).where(
                Message.enrolment_id.in_(ids),
                Message.state == MessageState.QUEUED,
                Message.retry_at > now,
            )
        )
    }


def _first_recipient(campaign: Campaign) -> Candidate | None:
    """A real candidate the first mail would go to, for the confirm page's preview."""
    now = runtime.now()
    query = select(Candidate).where(Candidate.status == CandidateStatus.ACTIVE)
    if campaign.entry_type == EntryType.TAG:
        query = query.where(Candidate.tags.any(Tag.name == campaign.entry_value))
    elif entry_segment_id(campaign) is not None:
        rules = segment_rules(db.session, campaign)
        if rules is not None:
            query = query.where(segment_service.compile_rules(rules, now))
    found = db.session.scalar(query.order_by(Candidate.id.desc()).limit(1))
    if found is None:  # nobody there yet: whoever the network holds
        found = db.session.scalar(
            select(Candidate)
            .where(Candidate.status == CandidateStatus.ACTIVE)
            .order_by(Candidate.id.desc())
            .limit(1)
        )
    return found


@bp.route(
    "/<int:campaign_id>/<any(activate, pause, resume, archive):action>",
    methods=["GET", "POST"],
)
@role_required(Role.EDITOR)
def campaign_status(campaign_id: int, action: str):
    """Confirm a status change with how many candidates it affects, then apply it."""
    campaign = _campaign_or_404(campaign_id)
    impact = campaign_service.status_change_impact(db.session, campaign, action, runtime.now())
    back = url_for("admin.campaigns.campaign", campaign_id=campaign.id)
    if impact["problem"]:
        flash(_sentence(impact["problem"]) + ".", "error")
        return redirect(back)
    starting = action in ("activate", "resume")
    # The admin never starts mail that still says a starter's sample copy.
    blocked = (
        campaign_service.sample_copy_steps(campaign, template_library(current_app))
        if starting
        else []
    )
    if request.method == "GET":
        recipient = _first_recipient(campaign) if starting and campaign.steps else None
        return render_template(
            "admin/campaigns/confirm.html",
            campaign=campaign,
            action=action,
            impact=impact,
            blocked=blocked,
            preview=mail_helpers.preview(recipient, step=campaign.steps[0], back=request.path)
            if starting and campaign.steps
            else None,
            cap=_cap_forecast(campaign, impact) if starting else None,
            window=window_text(campaign.send_window),
            segment_name=_segment_names().get(str(entry_segment_id(campaign) or ""), ""),
        )
    if blocked:
        flash("Not activated: " + "; ".join(blocked) + ".", "error")
        return redirect(request.path)
    try:
        campaign_service.apply_action(
            db.session,
            campaign,
            action,
            runtime.now(),
            segment_members=request.form.get("segment_members", "yes") == "yes",
        )
    except Conflict as exc:
        db.session.rollback()
        flash(_sentence(str(exc)) + ".", "error")
        return redirect(back)
    db.session.commit()
    detail = ""
    if action in ("activate", "resume") and impact["entering"]:
        detail = f" {analytics.plural(impact['entering'], 'candidate')} with the tag entered it."
    elif action == "activate" and impact["segment_now"]:
        if request.form.get("segment_members", "yes") == "yes":
            detail = (
                f" {analytics.plural(impact['segment_now'], 'candidate')} in the segment entered."
            )
        else:
            detail = " Only candidates who join the segment from now on will enter."
    elif action == "archive" and impact["active_enrolments"]:
        detail = f" {analytics.plural(impact['active_enrolments'], 'enrolment')} ended."
    flash(f"“{campaign.name}” {DONE[action]}.{detail}", "success")
    return redirect(back)


def _cap_forecast(campaign: Campaign, impact: dict[str, Any]) -> dict[str, Any] | None:
    """How many of those entering now the frequency cap would hold, for a regular first step."""
    if not campaign.steps or not (impact["entering"] or impact["segment_now"]):
        return None
    timing = Timing.from_config(current_app.config)
    first = campaign.steps[0]
    if timing.cap_for(first.category) is None:
        return {"held": 0, "personal": True}
    ids = select(Candidate.id).where(Candidate.status == CandidateStatus.ACTIVE)
    if campaign.entry_type == EntryType.TAG:
        ids = ids.where(Candidate.tags.any(Tag.name == campaign.entry_value))
    else:
        rules = segment_rules(db.session, campaign)
        if rules is None:
            return None
        ids = ids.where(segment_service.compile_rules(rules, runtime.now()))
    return {
        **campaign_service.at_the_cap(db.session, ids, timing, runtime.now()),
        "personal": False,
    }
