"""Admin pages: the mail the local SMTP capture caught."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

from nurture.models import Role
from nurture.web.admin.access import role_required

bp = Blueprint("mailbox", __name__, template_folder="templates")

_OPEN_PIXEL = re.compile(r'<img[^>]+/o/[^>]+\.gif"[^>]*>')


def _mailbox() -> mailbox.Maildir | None:
    directory = current_app.config.get("MAILBOX_DIR")
    if not directory or not Path(directory).is_dir():
        return None
    return mailbox.Maildir(directory, create=False)


# Editors and admins only: captured mail carries live unsubscribe and preference links (a click
# acts for the candidate), which a viewer, who changes nothing, must not be able to follow.


@bp.get("")
@role_required(Role.EDITOR)
def mailbox_list():
    """Mail caught by the local SMTP capture, newest first."""
    box = _mailbox()
    items = []
    if box is not None:
        for key, message in box.iteritems():
            items.append(
                {
                    "key": key,
                    "subject": str(message.get("Subject", "")),
                    "to": message.get("To", ""),
                    "from": message.get("From", ""),
                    "delivered": message.get_date(),  # when the capture stored it
                }
            )
    items.sort(key=lambda item: item["delivered"], reverse=True)
    return render_template("admin/mailbox.html", items=items[:200], configured=box is not None)


@bp.get("/<key>")
@role_required(Role.EDITOR)
def mailbox_message(key: str):
    """One captured mail, rendered (in a sandboxed frame) and as source."""
    box = _mailbox()
    if box is None or key not in box:
        abort(404)
    raw = box.get_bytes(key)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    html_part = parsed.get_body(("html",))
    text_part = parsed.get_body(("plain",))
    return render_template(
        "admin/message.html",
        message=parsed,
        # Without the open pixel: a recruiter looking is not the candidate opening.
        html=_OPEN_PIXEL.sub("", html_part.get_content()) if html_part else "",
        text=text_part.get_content() if text_part else "",
        source=raw.decode("utf-8", "replace"),
    )
