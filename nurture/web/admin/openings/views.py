"""Admin pages: job openings, the ranked review list of matching candidates, and sending."""

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
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, StringField, TextAreaField

from nurture import runtime
from nurture.core.campaigns import openings as opening_service
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.timing import Timing, describe_hold, parse_cap
from nurture.core.errors import Conflict, NotFound, ValidationError
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Message, Role
from nurture.models.openings import Opening, OpeningMatch
from nurture.web.admin import mail as mail_helpers
from nurture.web.admin.access import role_required

bp = Blueprint("openings", __name__, template_folder="templates")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


class JobForm(FlaskForm):
    """A job opening, as a recruiter types it."""

    title = StringField("Job title")
    role_family = StringField("Role family")
    skills = StringField("Skills")
    location = StringField("Location")
    remote = BooleanField("Remote is possible")
    url = StringField("Link to the job description")
    summary = TextAreaField("Summary for the mail")


class AddForm(FlaskForm):
    """Add a candidate to the list by email."""

    email = StringField("Add a candidate by email")


def _opening_or_404(job_id: int) -> Opening:
    try:
        return opening_service.opening_or_404(db.session, job_id)
    except NotFound:
        abort(404)


def _render_list(form: JobForm, status: int = 200):
    counts = dict(
        db.session.execute(
            select(OpeningMatch.opening_id, func.count())
            .where(OpeningMatch.excluded.is_(False))
            .group_by(OpeningMatch.opening_id)
        ).all()
    )
    rows = db.session.execute(
        select(Opening, Campaign.status)
        .outerjoin(Campaign, Campaign.id == Opening.campaign_id)
        .order_by(Opening.created_at.desc(), Opening.id.desc())
        .limit(200)
    ).all()
    return render_template(
        "admin/jobs/list.html", form=form, rows=rows, counts=counts, invalid=status >= 400
    ), status


@bp.get("")
@role_required(Role.VIEWER)
def jobs():
    """Job openings with how many candidates each will reach, and a form for a new one."""
    return _render_list(JobForm())


@bp.post("")
@role_required(Role.EDITOR)
def job_create():
    """Create a job opening and propose matching candidates for review."""
    form = JobForm()
    if not form.validate():
        return _render_list(form, 400)
    data: dict[str, Any] = {
        name: getattr(form, name).data
        for name in ("title", "role_family", "skills", "location", "url", "summary")
    }
    data["remote"] = bool(form.remote.data)
    try:
        job, count = opening_service.open_for_review(db.session, data, runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        for name, problem in exc.fields.items():
            if hasattr(form, name):
                getattr(form, name).errors = [_sentence(problem)]
        return _render_list(form, 422)
    db.session.commit()
    flash(
        f"“{job.title}” created: {count} candidate{'s' if count != 1 else ''} to review.", "success"
    )
    return redirect(url_for("admin.openings.job", job_id=job.id))


def _mail_states(job: Opening) -> dict[int, Message]:
    """Candidate id -> the alert's mail to them, for the review list's state column."""
    if job.campaign_id is None:
        return {}
    return {
        m.candidate_id: m
        for m in db.session.scalars(select(Message).where(Message.campaign_id == job.campaign_id))
    }


def _live(job: Opening) -> dict[str, Any]:
    """The alert's mail by state, and why some waits: the page shows it and polls it."""
    now = runtime.now()
    summary = opening_service.summary(db.session, job, now)
    if job.campaign_id is None:
        counts: dict[str, int] = {}
        waiting: list[Any] = []
    else:
        counts = dict(
            db.session.execute(
                select(Message.state, func.count())
                .where(Message.campaign_id == job.campaign_id)
                .group_by(Message.state)
            ).all()
        )
        waiting = campaign_service.waiting(db.session, now, campaign_id=job.campaign_id)
    held = sum(w.count for w in waiting)
    cap = parse_cap(current_app.config.get("FREQUENCY_CAP"))
    in_queue = counts.get("queued", 0) + counts.get("sending", 0) - held
    return {
        "matches": summary["matches"] - summary["excluded"],
        "pending": summary["pending"],
        "enrolled": summary["enrolled"],
        "sent": counts.get("sent", 0),
        "held": held,
        "queued": in_queue,
        "skipped": counts.get("skipped", 0),
        "held_why": [
            f"{w.count} {describe_hold(w.reason, cap=cap)}"
            + (
                f", the first until {w.first.strftime('%d %b %H:%M UTC').lstrip('0')}"
                if w.first
                else ""
            )
            for w in waiting
        ],
        "waiting_list": waiting,
        "finished": summary["pending"] == 0 and held == 0 and in_queue <= 0,
    }


def _send_label(live: dict[str, Any]) -> str:
    """What the send button (or its stand-in) says."""
    if live["pending"]:
        return f"Send alert to {live['pending']} candidate{'s' if live['pending'] != 1 else ''}…"
    if live["held"]:
        return f"Everyone is getting it: {live['held']} waiting for their time"
    if live["sent"] + live["skipped"] < live["enrolled"]:
        return f"Everyone is getting it: {live['sent']} sent so far"
    return "Everyone on the list has this alert"


def _render_job(job: Opening, add_form: AddForm | None = None, status: int = 200):
    campaign = db.session.get(Campaign, job.campaign_id) if job.campaign_id else None
    live = _live(job)
    return render_template(
        "admin/jobs/detail.html",
        job=job,
        campaign=campaign,
        rows=opening_service.review_list(db.session, job),
        mails=_mail_states(job),
        summary=opening_service.summary(db.session, job, runtime.now()),
        live={k: v for k, v in live.items() if k != "waiting_list"},
        waiting=live["waiting_list"],
        send_label=_send_label(live),
        add_form=add_form or AddForm(),
    ), status


@bp.get("/<int:job_id>/progress")
@role_required(Role.VIEWER)
def job_progress(job_id: int):
    """The alert's progress as JSON, for its page to follow live."""
    live = _live(_opening_or_404(job_id))
    live.pop("waiting_list")
    return jsonify(live)


@bp.get("/<int:job_id>")
@role_required(Role.VIEWER)
def job(job_id: int):
    """The ranked review list of a job opening, with why each candidate matched."""
    return _render_job(_opening_or_404(job_id))


@bp.post("/<int:job_id>/matches/<int:candidate_id>/<any(exclude, include):action>")
@role_required(Role.EDITOR)
def job_match(job_id: int, candidate_id: int, action: str):
    """Remove a candidate from the list, or put them back."""
    job = _opening_or_404(job_id)
    try:
        opening_service.set_excluded(
            db.session, job, candidate_id, action == "exclude", runtime.now()
        )
    except NotFound:
        abort(404)
    db.session.commit()
    if request.accept_mimetypes.best == "application/json":
        # Answered in place: the row and the counts change, the page stays where it was.
        row = next(r for r in opening_service.review_list(db.session, job)
                   if r.OpeningMatch.candidate_id == candidate_id)  # fmt: skip
        live = _live(job)
        html = render_template(
            "admin/jobs/_row.html", job=job, row=row, mails=_mail_states(job), rank=""
        )
        return jsonify(
            row=html,
            counts={"matches": live["matches"], "pending": live["pending"], "sent": live["sent"]},
            send=_send_label(live),
        )
    return redirect(url_for("admin.openings.job", job_id=job.id, _anchor=f"c{candidate_id}"))


@bp.post("/<int:job_id>/matches")
@role_required(Role.EDITOR)
def job_add(job_id: int):
    """Add a candidate to the list by email."""
    job = _opening_or_404(job_id)
    form = AddForm()
    if not form.validate():
        return _render_job(job, form, 400)
    try:
        match = opening_service.add_candidate(db.session, job, form.email.data, runtime.now())
    except ValidationError as exc:
        db.session.rollback()
        form.email.errors = [_sentence(p) for p in exc.fields.values()] or [exc.message]
        return _render_job(job, form, 422)
    db.session.commit()
    flash("Candidate added to the list.", "success")
    return redirect(url_for("admin.openings.job", job_id=job.id, _anchor=f"c{match.candidate_id}"))


@bp.route("/<int:job_id>/send", methods=["GET", "POST"])
@role_required(Role.EDITOR)
def job_send(job_id: int):
    """Confirm, then send the alert to everyone on the reviewed list not yet mailed."""
    job = _opening_or_404(job_id)
    pending = opening_service.pending_count(db.session, job, runtime.now())
    if request.method == "GET":
        now = runtime.now()
        to_mail = opening_service.pending_ids(db.session, job, now)
        first = db.session.scalar(
            select(Candidate).where(Candidate.id.in_(to_mail)).order_by(Candidate.id).limit(1)
        )
        timing = Timing.from_config(current_app.config)
        return render_template(
            "admin/jobs/confirm.html",
            job=job,
            pending=pending,
            capped=campaign_service.at_the_cap(db.session, to_mail, timing, now),
            preview=mail_helpers.preview(
                first,
                template=opening_service.TEMPLATE,
                job_id=job.id,
                job=opening_service.job_shown(job),
                back=request.path,
            ),
        )
    try:
        enrolled = opening_service.approve(db.session, job, runtime.now())
    except Conflict as exc:
        db.session.rollback()
        flash(_sentence(str(exc)) + ".", "error")
        return redirect(url_for("admin.openings.job", job_id=job.id))
    db.session.commit()
    if enrolled:
        flash(
            f"The alert goes out to {enrolled} candidate{'s' if enrolled != 1 else ''}.", "success"
        )
    else:
        flash("Nobody new to send to: everyone on the list already has this alert.", "info")
    return redirect(url_for("admin.openings.job", job_id=job.id))
