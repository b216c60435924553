"""JSON API: the replies inbox — candidates' replies, open or handled."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request

from nurture import runtime
from nurture.core.errors import ValidationError
from nurture.core.feedback import replies as reply_service
from nurture.extensions import db
from nurture.models import Reply, ReplyState, Role
from nurture.web.api.auth import ApiError, requires
from nurture.web.api.routes import bp


def parse_inbox_state(args: Any) -> str:
    """``?state=open`` (default), ``handled`` or ``all``."""
    state = args.get("state", ReplyState.OPEN)
    if state not in (*ReplyState, "all"):
        raise ValidationError("state is not valid", {"state": "must be open, handled or all"})
    return "" if state == "all" else state


def _reply(reply_id: int) -> Reply:
    reply = db.session.get(Reply, reply_id)
    if reply is None:
        raise ApiError(404, "not_found", f"no reply {reply_id}")
    return reply


@bp.get("/replies")
@requires(Role.VIEWER)
def list_replies():
    """The inbox, newest first (200 at most), with counts by state."""
    query = reply_service.inbox_query(parse_inbox_state(request.args)).limit(200)
    return jsonify(
        {
            "counts": reply_service.inbox_counts(db.session),
            "replies": [reply_service.reply_dict(r) for r, _c in db.session.execute(query)],
        }
    )


@bp.get("/replies/<int:reply_id>")
@requires(Role.VIEWER)
def get_reply(reply_id: int):
    """One reply with its whole text and the conversation it belongs to."""
    reply = _reply(reply_id)
    turns = reply_service.conversation(db.session, reply)
    return jsonify(
        {
            **reply_service.reply_dict(reply),
            "body": reply.body,
            "conversation": [
                {"at": t.at.isoformat(), "who": t.who, "subject": t.subject, "text": t.text}
                for t in turns
            ],
        }
    )


def _set(reply_id: int, handled: bool):
    reply = _reply(reply_id)
    reply_service.set_handled(reply, handled, g.api_user, runtime.now())
    db.session.commit()
    return jsonify(reply_service.reply_dict(reply))


@bp.post("/replies/<int:reply_id>/handled")
@requires(Role.EDITOR)
def reply_handled(reply_id: int):
    """Mark a reply handled."""
    return _set(reply_id, True)


@bp.post("/replies/<int:reply_id>/reopen")
@requires(Role.EDITOR)
def reply_reopen(reply_id: int):
    """Put a handled reply back in the open inbox."""
    return _set(reply_id, False)
