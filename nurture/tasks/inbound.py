"""The periodic inbound pass: read the reply and bounce mailboxes and act on each new mail."""

from __future__ import annotations

import logging
from collections import Counter

from flask import Flask

from nurture import runtime
from nurture.core.feedback import inbound as inbound_service
from nurture.core.feedback.mailbox import parse_url, unseen
from nurture.extensions import db
from nurture.tasks.replies import forward_pending_replies

log = logging.getLogger(__name__)


def read_mailbox(app: Flask, url: str, setting: str = "mailbox") -> Counter[str]:
    """Classify and apply each unseen mail in one mailbox; returns counts by outcome."""
    clock = runtime.clock(app)
    soft_limit = int(app.config.get("SOFT_BOUNCE_LIMIT", 3))
    counts: Counter[str] = Counter()
    with unseen(parse_url(url, setting)) as (messages, done):
        for fetched in messages:
            try:
                found = inbound_service.classify(fetched.raw)
            except Exception:  # noqa: BLE001 - unreadable mail is set aside, not retried forever
                log.exception("inbound: cannot read mail %s in %s", fetched.key, setting)
                counts["unreadable"] += 1
                done(fetched.key)
                continue
            try:
                outcome = inbound_service.apply(db.session, found, clock.now(), soft_limit)
                db.session.commit()
            except Exception:
                # Left unseen: the next pass tries again (applying is idempotent).
                db.session.rollback()
                raise
            done(fetched.key)
            counts["duplicate" if outcome.duplicate else outcome.kind] += 1
    return counts


def process_inbound(app: Flask) -> Counter[str]:
    """Read the inbound (replies) and bounce mailboxes, whichever are configured, then forward
    the replies found (and any whose forward is due for a retry) to their recruiters."""
    counts: Counter[str] = Counter()
    try:
        seen: set[str] = set()
        for setting in ("INBOUND_IMAP_URL", "BOUNCE_IMAP_URL"):
            url = app.config.get(setting)
            if url and url not in seen:  # one mailbox may serve both
                seen.add(url)
                counts.update(read_mailbox(app, url, setting))
    finally:
        db.session.remove()
    forwarded = forward_pending_replies(app)
    if forwarded.get("sent"):
        counts["forwarded"] += forwarded["sent"]
    return counts
