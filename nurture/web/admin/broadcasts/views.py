"""Admin pages: broadcasts (newsletters): the list, a new one checked and confirmed, progress."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
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
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice

from nurture import runtime
from nurture.core.campaigns import broadcasts as broadcast_service
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.timing import Timing, describe_hold, local_instant, parse_cap, zone
from nurture.core.content import templates as template_service
from nurture.core.errors import ValidationError
from nurture.core.feedback.ratings import rating_summary, recent_comments
from nurture.extensions import db
from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    Role,
    Segment,
    Tag,
    Topic,
)
from nurture.tasks.sending import template_library
from nurture.web.admin import mail as mail_helpers
from nurture.web.admin.access import role_required
from nurture.web.admin.campaigns.views import TOPIC_LABELS

bp = Blueprint("broadcasts", __name__, template_folder="templates")

PER_PAGE = 25
STATES = ("queued", "sending", "sent", "failed", "skipped")
# Service error keys → the form field that shows them.
_FORM_FIELDS = {
    "name": "name",
    "subject": "subject",
    "template": "template",
    "html": "template",
    "audience.tag": "audience_tag",
    "audience.segment_id": "audience_segment",
    "scheduled_at": "scheduled_at",
    "local_time": "local_time",
    "topic": "topic",
}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


class BroadcastForm(FlaskForm):
    """One mail to a tag or a segment, now or at a time; the service checks every choice."""

    name = StringField("Name")
    subject = StringField("Subject")
    template = SelectField("Template", default="newsletter", validate_choice=False)
    audience_kind = RadioField(
        "Goes to",
        choices=[
            SelectChoice("tag", "Candidates with a tag"),
            SelectChoice("segment", "A segment"),
        ],
        default="tag",
        validate_choice=False,
    )
    audience_tag = StringField("Tag")
    audience_segment = SelectField("Segment", validate_choice=False)
    when = RadioField(
        "Sends",
        choices=[
            SelectChoice("now", "Now, right after you confirm"),
            SelectChoice("later", "At a date and time"),
        ],
        default="now",
        validate_choice=False,
    )
    scheduled_at = StringField("Date and time")
    local_time = BooleanField("At this hour in each candidate's own time zone")
    topic = SelectField(
        "Preference topic",
        choices=[SelectChoice(key, label) for key, label in TOPIC_LABELS.items()],
        default=Topic.NEWSLETTER.value,
        validate_choice=False,
    )


def _team_zone() -> str:
    return current_app.config.get("TEAM_TIMEZONE") or "UTC"


def _scheduled(form: BroadcastForm) -> str:
    """The typed date and time as the service takes it: an instant in the team's zone, or as
    written when it is each candidate's local hour."""
    value = (form.scheduled_at.data or "").strip()
    if not value or form.local_time.data:
        return value
    try:
        typed = datetime.fromisoformat(value)
    except ValueError:
        return value  # the service says what is wrong with it
    if typed.tzinfo is not None:
        return value
    return local_instant(typed.date(), typed.time(), zone(_team_zone())).isoformat()


def _data(form: BroadcastForm) -> dict[str, Any]:
    """The form in the shape ``create_broadcast`` takes."""
    if form.audience_kind.data == "segment":
        audience: dict[str, Any] = {"segment_id": form.audience_segment.data or ""}
    else:
        audience = {"tag": form.audience_tag.data or ""}
    data: dict[str, Any] = {
        "name": form.name.data,
        "template": form.template.data or "",
        "subject": form.subject.data or "",
        "audience": audience,
        "topic": form.topic.data,
    }
    if form.when.data == "later":
        data["scheduled_at"] = _scheduled(form)
        data["local_time"] = bool(form.local_time.data)
    return data


def _place_errors(form: BroadcastForm, fields: dict[str, str]) -> list[str]:
    """Put each service error at its field; returns those no field shows."""
    general = []
    # "Nobody in this audience…" belongs to the tag or the segment that was chosen.
    chosen = "audience_segment" if form.audience_kind.data == "segment" else "audience_tag"
    for key, problem in fields.items():
        if key == "audience":
            getattr(form, chosen).errors = [_sentence(problem)]
        elif key in _FORM_FIELDS:
            getattr(form, _FORM_FIELDS[key]).errors = [_sentence(problem)]
        else:
            general.append(_sentence(problem))
    return general


def _form() -> BroadcastForm:
    form = BroadcastForm()
    segments = db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name)).all()
    form.audience_segment.choices = [SelectChoice("", "Choose a segment…")] + [
        SelectChoice(str(segment_id), name) for segment_id, name in segments
    ]
    return form


def _render_form(form: BroadcastForm, general: list[str] | None = None, status: int = 200):
    return render_template(
        "admin/broadcasts/new.html",
        form=form,
        general=general or [],
        invalid=status >= 400,
        templates=campaign_service.template_names(db.session, template_library(current_app)),
        tags=db.session.scalars(select(Tag.name).order_by(Tag.name)).all(),
        team_zone=_team_zone(),
    ), status


def _broadcast_or_404(broadcast_id: int) -> Campaign:
    campaign = db.session.get(Campaign, broadcast_id)
    if campaign is None or campaign.kind != CampaignKind.BROADCAST:
        abort(404)
    return campaign


def _as_time(value: Any) -> datetime | None:
    """A time from the service, given as a datetime or as ISO-8601 text."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _audience_label(campaign: Campaign, segment_names: dict[int, str]) -> tuple[str, str]:
    """("tag" | "segment", what to show)."""
    kind, value = broadcast_service.audience_of(campaign)
    if kind == "segment":
        name = segment_names.get(int(value)) if value.isdigit() else None
        return "segment", name or f"Segment #{value} (deleted)"
    return "tag", value


def _view(campaign: Campaign, now: datetime, segment_names: dict[int, str]) -> SimpleNamespace:
    """A broadcast as the pages show it: audience, phase, progress."""
    progress = broadcast_service.progress(db.session, campaign, now)
    messages = progress["messages"]
    sent_at = _as_time(progress["sent_at"])
    in_flight = messages.get("queued", 0) + messages.get("sending", 0)
    done = progress["total"] - in_flight
    start = campaign.scheduled_at
    if start is not None and campaign.local_time:
        start = start - broadcast_service.EARLIEST  # the first zone to reach the hour
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.ARCHIVED, CampaignStatus.PAUSED):
        phase = str(campaign.status)
    elif sent_at is not None and not in_flight:
        phase = "sent"
    elif sent_at is None and progress["total"] == 0 and start is not None and start > now:
        phase = "scheduled"
    else:
        phase = "sending"
    expected = (
        progress["total"]
        if sent_at is not None
        else max(progress["total"] + (progress["waiting_audience"] or 0), 1)
    )
    audience_kind, audience = _audience_label(campaign, segment_names)
    return SimpleNamespace(
        campaign=campaign,
        progress=progress,
        messages=messages,
        sent_at=sent_at,
        phase=phase,
        done=done,
        expected=expected,
        percent=round(100 * done / expected) if expected else 0,
        audience_kind=audience_kind,
        audience=audience,
    )


def _segment_names() -> dict[int, str]:
    return dict(db.session.execute(select(Segment.id, Segment.name)).all())


@bp.get("")
@role_required(Role.VIEWER)
def broadcasts():
    """Every broadcast, newest first: its audience, when it goes or went, and how far it got."""
    # Bounded: a page number of 30 digits is no page, not an OFFSET the database overflows on.
    page = min(max(1, request.args.get("page", 1, type=int) or 1), 1_000_000)
    where = Campaign.kind == CampaignKind.BROADCAST
    total = db.session.scalar(select(func.count()).select_from(Campaign).where(where)) or 0
    campaigns = db.session.scalars(
        select(Campaign)
        .where(where)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
    ).all()
    now, names = runtime.now(), _segment_names()
    first = (page - 1) * PER_PAGE
    pager = SimpleNamespace(
        summary=(
            f"{first + 1}–{first + len(campaigns)} of {total}"
            if campaigns
            else f"{total} broadcasts"
        ),
        prev_url=url_for("admin.broadcasts.broadcasts", page=page - 1) if page > 1 else None,
        next_url=url_for("admin.broadcasts.broadcasts", page=page + 1)
        if first + PER_PAGE < total
        else None,
    )
    return render_template(
        "admin/broadcasts/list.html",
        rows=[_view(campaign, now, names) for campaign in campaigns],
        pager=pager,
        total=total,
    )


@bp.route("/new", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def broadcast_new():
    """Write a broadcast, see whom it reaches, then confirm to schedule it."""
    form = _form()
    if request.method == "GET":
        return _render_form(form)
    action = request.form.get("action", "check")
    if action == "edit":  # back from the confirmation, with everything as typed
        return _render_form(form)
    if not form.validate():
        return _render_form(form, status=400)
    data = _data(form)
    library = template_library(current_app)
    timing = Timing.from_config(current_app.config)
    try:
        check = broadcast_service.check_broadcast(db.session, data, library, runtime.now(), timing)
        if action == "confirm":
            campaign = broadcast_service.create_broadcast(db.session, data, library, runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        return _render_form(form, _place_errors(form, exc.fields), 422)
    if action != "confirm":
        sample = db.session.get(Candidate, check["sample_id"]) if check["sample_id"] else None
        if action == "test":
            answer = _test(sample, data, request.form.get("to", ""))
            if answer is not None:
                return answer
        preview = mail_helpers.preview(sample, template=data["template"], subject=data["subject"])
        return render_template(
            "admin/broadcasts/confirm.html",
            form=form,
            check=check,
            preview=preview,
            audience=_audience_typed(form),
            topics=TOPIC_LABELS,
        )
    db.session.commit()
    people = f"{check['audience']} candidates are" if check["audience"] != 1 else "1 candidate is"
    if campaign.scheduled_at is None:
        flash(f"“{campaign.name}” is going out now: {people} in its audience.", "success")
    else:
        flash(f"“{campaign.name}” is scheduled: {people} in its audience today.", "success")
    return redirect(url_for("admin.broadcasts.broadcast", broadcast_id=campaign.id))


def _test(sample: Candidate | None, data: dict[str, Any], to: str):
    """A test of the broadcast from its confirm page: JSON for the page's fetch, else a flash
    (and the confirm page again, with everything as typed)."""
    person = sample or template_service.sample_candidate()
    ok, message = True, ""
    try:
        mail = mail_helpers.compiled(data["template"], data["subject"])
        message = mail_helpers.send_test(mail, person, to)
    except ValidationError as exc:
        ok, message = False, "The test was not sent: " + "; ".join(exc.fields.values()) + "."
    except mail_helpers.TestProblem as exc:
        ok, message = False, str(exc)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(ok=ok, message=message), 200 if ok else 422
    flash(message, "success" if ok else "error")
    return None


def _audience_typed(form: BroadcastForm) -> tuple[str, str]:
    """("tag" | "segment", name) as chosen in the form."""
    if form.audience_kind.data == "segment":
        value = form.audience_segment.data or ""
        return "segment", _segment_names().get(int(value), "") if value.isdigit() else ""
    return "tag", (form.audience_tag.data or "").strip().lower()


@bp.get("/<int:broadcast_id>")
@role_required(Role.VIEWER)
def broadcast(broadcast_id: int):
    """A broadcast's progress: messages by state, and what candidates did with the mail."""
    campaign = _broadcast_or_404(broadcast_id)
    row = _view(campaign, runtime.now(), _segment_names())
    stats = campaign_service.campaign_stats(db.session, campaign)
    return render_template(
        "admin/broadcasts/detail.html",
        row=row,
        campaign=campaign,
        stats=stats[0] if stats else None,
        live=_live(campaign, row),
        ratings=rating_summary(db.session, campaign.id),
        comments=recent_comments(db.session, campaign.id),
        states=STATES,
        topics=TOPIC_LABELS,
        # A broadcast that has gone out has nothing left to pause.
        actions=[
            a
            for a in ("pause", "resume", "archive")
            if not campaign_service.action_problem(campaign, a)
            and not (a == "pause" and row.phase == "sent")
        ],
    )


def _live(campaign: Campaign, row: SimpleNamespace) -> dict[str, Any]:
    """What the progress panel shows, and what its polling gets: counts, and why mail waits
    or was skipped."""
    now = runtime.now()
    messages = row.messages
    waiting = campaign_service.waiting(db.session, now, campaign_id=campaign.id)
    held = sum(w.count for w in waiting)
    return {
        "phase": row.phase,
        "percent": row.percent,
        "done": row.done,
        "expected": row.expected,
        "sent": messages.get("sent", 0),
        "held": held,
        "queued": messages.get("queued", 0) + messages.get("sending", 0) - held,
        "skipped": messages.get("skipped", 0),
        "failed": messages.get("failed", 0),
        "waiting_audience": row.progress["waiting_audience"] or 0,
        "audience_note": _audience_note(campaign, row.progress["waiting_audience"] or 0),
        "held_why": [
            f"{w.count} {_why(w.reason)}{mail_helpers.first_until(w.first)}" for w in waiting
        ],
        "skipped_why": [
            f"{count} {why}"
            for why, count in campaign_service.skipped_reasons(db.session, campaign.id)
        ],
        "finished": row.phase in ("sent", "archived") and held == 0,
        "stats": _stats(campaign),
    }


STAT_NAMES = ("opened", "clicked", "unsubscribed", "bounced")


def _stats(campaign: Campaign) -> dict[str, Any]:
    """What candidates did with the mail, with each rate, for "What candidates did"."""
    rows = campaign_service.campaign_stats(db.session, campaign)
    stats = rows[0] if rows else {"sent": 0, "failed": 0, **dict.fromkeys(STAT_NAMES, 0)}
    rates = {
        f"{name}_rate": f"{100 * stats[name] / stats['sent']:.1f}%" if stats["sent"] else "—"
        for name in STAT_NAMES
    }
    return {
        "sent": stats["sent"],
        "failed": stats["failed"],
        **{n: stats[n] for n in STAT_NAMES},
        **rates,
    }


def _audience_note(campaign: Campaign, waiting: int) -> str:
    """Who in the audience has no mail yet, and why (their local hour, the next pass)."""
    if not waiting:
        return ""
    why = ": their local hour has not come" if campaign.local_time else " (the next pass makes it)"
    return f"{waiting} more in the audience have no mail yet{why}."


def _why(reason: str) -> str:
    return describe_hold(reason, cap=parse_cap(current_app.config.get("FREQUENCY_CAP")))


@bp.get("/<int:broadcast_id>/progress")
@role_required(Role.VIEWER)
def broadcast_progress(broadcast_id: int):
    """A broadcast's progress as JSON, for its page to follow live."""
    campaign = _broadcast_or_404(broadcast_id)
    return jsonify(_live(campaign, _view(campaign, runtime.now(), _segment_names())))
