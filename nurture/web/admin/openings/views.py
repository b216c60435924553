"""Admin pages: job openings, the ranked review list of matching candidates, and sending."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import BooleanField, StringField, TextAreaField

from nurture import runtime
from nurture.core.campaigns import openings as opening_service
from nurture.core.errors import Conflict, NotFound, ValidationError
from nurture.extensions import db
from nurture.models import Campaign, Role
from nurture.models.openings import Opening, OpeningMatch
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


def _render_job(job: Opening, add_form: AddForm | None = None, status: int = 200):
    campaign = db.session.get(Campaign, job.campaign_id) if job.campaign_id else None
    return render_template(
        "admin/jobs/detail.html",
        job=job,
        campaign=campaign,
        rows=opening_service.review_list(db.session, job),
        summary=opening_service.summary(db.session, job, runtime.now()),
        add_form=add_form or AddForm(),
    ), status


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
        return render_template("admin/jobs/confirm.html", job=job, pending=pending)
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
