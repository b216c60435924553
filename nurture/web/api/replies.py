"""JSON API: the replies inbox — candidates' replies, open or handled."""

from __future__ import annotations

from flask import g, jsonify

from nurture import runtime
from nurture.core.feedback import replies as reply_service
from nurture.core.feedback.schemas import InboxQuery
from nurture.extensions import db
from nurture.models import Reply, Role
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation


def _reply(reply_id: int) -> Reply:
    reply = db.session.get(Reply, reply_id)
    if reply is None:
        raise ApiError(404, "not_found", f"no reply {reply_id}")
    return reply


@operation("GET", "/replies", role=Role.VIEWER, query=InboxQuery)
def list_replies(query: InboxQuery):
    """The inbox (``?state=open``, ``handled`` or ``all``), newest first (200 at most), with
    counts by state."""
    rows = db.session.execute(reply_service.inbox_query(query.reply_state).limit(200))
    return jsonify(
        {
            "counts": reply_service.inbox_counts(db.session),
            "replies": [reply_service.reply_dict(r) for r, _c in rows],
        }
    )


@operation("GET", "/replies/<int:reply_id>", role=Role.VIEWER)
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


@operation("POST", "/replies/<int:reply_id>/handled", role=Role.EDITOR)
def reply_handled(reply_id: int):
    """Mark a reply handled."""
    return _set(reply_id, True)


@operation("POST", "/replies/<int:reply_id>/reopen", role=Role.EDITOR)
def reply_reopen(reply_id: int):
    """Put a handled reply back in the open inbox."""
    return _set(reply_id, False)
