"""The periodic inbound pass: read the reply and bounce mailboxes and act on each new mail."""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from nurture.extensions import db
from nurture.core.feedback import inbound as inbound_service
from nurture.core.feedback.mailbox import parse_url, unseen

log = logging.getLogger(__name__)

# Seconds between passes of `nurture inbound` without --once.
INBOUND_INTERVAL = 60.0


def read_mailbox(app: Flask, url: str, setting: str = "mailbox") -> Counter[str]:
    """Classify and apply each unseen mail in one mailbox; returns counts by outcome."""
    clock = app.extensions["nurture.runtime"]
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
    """Read the inbound (replies) and bounce mailboxes, whichever are configured."""
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
    return counts


@click.command("inbound")
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option("--interval", type=float, default=INBOUND_INTERVAL, show_default=True,
              help="Seconds between passes.")
@with_appcontext
def inbound_command(once: bool, interval: float) -> None:
    """Read replies, bounces and complaints from the configured mailboxes."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not (app.config.get("INBOUND_IMAP_URL") or app.config.get("BOUNCE_IMAP_URL")):
        raise click.ClickException(
            "set NURTURE_INBOUND_IMAP_URL and/or NURTURE_BOUNCE_IMAP_URL "
            "(imaps://user:pass@host:993/INBOX or maildir:///path)"
        )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    if not once:
        signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            counts = process_inbound(app)
            if counts or once:
                summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                click.echo(f"inbound: {summary or 'nothing new'}")
        except Exception as exc:  # noqa: BLE001 - a mail server outage must not end the loop
            if once:
                raise click.ClickException(f"inbound pass failed: {exc}") from exc
            click.echo(f"inbound: pass failed: {exc}", err=True)
        if once or stopping:
            return
        deadline = time.monotonic() + interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.2)
