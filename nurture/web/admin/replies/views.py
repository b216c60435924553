"""Admin pages: the replies inbox, one reply with its conversation, handled / open again."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from nurture import runtime
from nurture.core.feedback import replies as reply_service
from nurture.extensions import db
from nurture.models import Candidate, Event, EventKind, Message, Reply, ReplyState, Role, User
from nurture.web.admin.access import role_required

bp = Blueprint("replies", __name__, template_folder="templates")

TABS = [(ReplyState.OPEN, "Open"), (ReplyState.HANDLED, "Handled"), ("all", "All")]
SHOWN = 200


@bp.app_template_global()
def candidate_replies(candidate_id: int) -> list[Reply]:
    """A candidate's replies, newest first (for their page in the admin)."""
    return list(
        db.session.scalars(
            select(Reply)
            .where(Reply.candidate_id == candidate_id)
            .order_by(Reply.received_at.desc())
            .limit(20)
        )
    )


@bp.get("")
@role_required(Role.VIEWER)
def replies():
    """The inbox: open replies first, newest first; handled ones under their own tab."""
    state = request.args.get("state", ReplyState.OPEN)
    if state not in {key for key, _ in TABS}:
        state = ReplyState.OPEN
    rows = db.session.execute(
        reply_service.inbox_query("" if state == "all" else state).limit(SHOWN)
    ).all()
    automatic = db.session.scalar(
        select(func.count())
        .select_from(Event)
        .where(Event.kind == EventKind.REPLY, Event.machine.is_(True))
    )
    return render_template(
        "admin/replies/inbox.html",
        rows=rows,
        state=state,
        tabs=TABS,
        counts=reply_service.inbox_counts(db.session),
        automatic=automatic or 0,
        shown=SHOWN,
    )


def _reply_or_404(reply_id: int) -> Reply:
    reply = db.session.get(Reply, reply_id)
    if reply is None:
        abort(404)
    return reply


@bp.get("/<int:reply_id>")
@role_required(Role.VIEWER)
def reply(reply_id: int):
    """One reply: what they wrote, the whole mail's text, the conversation, the forward."""
    found = _reply_or_404(reply_id)
    candidate = db.session.get(Candidate, found.candidate_id)
    return render_template(
        "admin/replies/detail.html",
        reply=found,
        candidate=candidate,
        answered=db.session.get(Message, found.message_id) if found.message_id else None,
        turns=reply_service.conversation(db.session, found),
        handled_by=db.session.get(User, found.handled_by_id) if found.handled_by_id else None,
        team_address=current_app.config.get("REPLY_TEAM_ADDRESS") or "",
    )


def _back(reply_id: int):
    target = request.form.get("next", "")
    if target.startswith("/admin/replies"):
        return redirect(target, code=303)
    return redirect(url_for("admin.replies.reply", reply_id=reply_id), code=303)


@bp.post("/<int:reply_id>/handled")
@role_required(Role.EDITOR)
def reply_handled(reply_id: int):
    """Mark a reply handled."""
    found = _reply_or_404(reply_id)
    reply_service.set_handled(found, True, current_user, runtime.now())
    db.session.commit()
    flash(f"Marked handled: the reply from {found.from_name or found.from_address}.", "success")
    return _back(reply_id)


@bp.post("/<int:reply_id>/reopen")
@role_required(Role.EDITOR)
def reply_reopen(reply_id: int):
    """Put a handled reply back in the open inbox."""
    found = _reply_or_404(reply_id)
    reply_service.set_handled(found, False, None, runtime.now())
    db.session.commit()
    flash("Open again.", "success")
    return _back(reply_id)


@bp.post("/<int:reply_id>/forward")
@role_required(Role.EDITOR)
def reply_forward(reply_id: int):
    """Forward the reply again, to the candidate's recruiter as it is now (or the team)."""
    found = _reply_or_404(reply_id)
    candidate = db.session.get(Candidate, found.candidate_id)
    to = reply_service.forward_address(candidate, current_app.config.get("REPLY_TEAM_ADDRESS"))
    reply_service.forward_again(found, to, runtime.now())
    db.session.commit()
    if to:
        flash(f"It goes to {to} with the next inbound pass (within a minute).", "success")
    else:
        flash("Nobody to forward it to: give the candidate a recruiter, or set "
              "NURTURE_REPLY_TEAM_ADDRESS.", "error")  # fmt: skip
    return _back(reply_id)
