"""The job that sends a batch of messages."""

from __future__ import annotations

import threading
from datetime import timedelta

from flask import Flask, current_app
from rq import get_current_job

from nurture import runtime
from nurture.core.campaigns.timing import Timing
from nurture.core.content.mime import MailSettings
from nurture.core.content.rendering import TemplateLibrary, inline_css_in_child
from nurture.core.content.templates import sources_from, translations_from
from nurture.core.delivery.circuit import CircuitBreaker
from nurture.core.delivery.dkim import DkimSigner
from nurture.core.delivery.ratelimit import RateLimiter
from nurture.core.delivery.sending import Sender
from nurture.core.delivery.sending import send_messages as send_service
from nurture.core.delivery.smtp import SmtpSettings
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.tasks import get_redis
from nurture.tasks.stores import RedisStore, redis_buckets
from nurture.tasks.telemetry import BatchRecorder, InstrumentedTransport

# Threads starting at once must share one Sender: a second one's SMTP connection would leak.
_SENDER_LOCK = threading.Lock()


def sender_for(app: Flask) -> Sender:
    """The process-wide Sender: its template cache and SMTP connection outlive each job."""
    sender = app.extensions.get("nurture.sender")
    if sender is not None:
        return sender
    with _SENDER_LOCK:
        return app.extensions.get("nurture.sender") or _new_sender(app)


def _new_sender(app: Flask) -> Sender:
    """Build the Sender from the configuration and keep it on the app."""
    settings = MailSettings.from_config(app.config)
    sender = Sender(
        settings=settings,
        library=template_library(app),
        tokens=Tokens.from_config(app.config),
        transport=InstrumentedTransport(
            SmtpSettings.from_url(app.config["SMTP_URL"], app.config["SMTP_TIMEOUT"]),
            # PIPELINING where the relay offers it; NURTURE_SMTP_PIPELINING=false turns it off
            # (a relay that advertises it and gets it wrong; the benchmark's comparison).
            pipelining=app.config.get("SMTP_PIPELINING", True) not in (False, "false", "0", 0),
        ),
        dkim=dkim_signer(app),
        timing=Timing.from_config(app.config),
        max_attempts=int(app.config["SMTP_MAX_ATTEMPTS"]),
        retry_base=timedelta(seconds=float(app.config["SMTP_RETRY_BASE_SECONDS"])),
        # Budgets and the breaker's pause are shared by every worker through Redis.
        limiter=RateLimiter(
            float(app.config["SMTP_RATE_PER_SECOND"]),
            app.config["SMTP_DOMAIN_RATES"],
            bucket=redis_buckets(get_redis(app)),
        ),
        breaker=CircuitBreaker(
            int(app.config["SMTP_BREAKER_THRESHOLD"]),
            timedelta(seconds=float(app.config["SMTP_BREAKER_COOLDOWN_SECONDS"])),
            RedisStore(get_redis(app)),
        ),
        soft_bounce_limit=int(app.config.get("SOFT_BOUNCE_LIMIT", 3)),
    )
    app.extensions["nurture.sender"] = sender
    return sender


def dkim_signer(app: Flask) -> DkimSigner | None:
    """The DKIM signer every mail of the app is signed with, built once (None: not set up).

    An unusable key raises DkimError and is not remembered, so a fixed key file is picked up
    by the next attempt.
    """
    if "nurture.dkim" not in app.extensions:
        app.extensions["nurture.dkim"] = DkimSigner.from_config(app.config)
    return app.extensions["nurture.dkim"]


def template_library(app: Flask) -> TemplateLibrary:
    """The app's template library (starter files and the admin's templates) and its cache."""
    library = app.extensions.get("nurture.templates")
    if library is None:
        # db.session is scoped: each job or request looks templates up in its own session.
        # A worker (run_worker) inlines CSS in a child process: its memory stays flat.
        inline = inline_css_in_child if app.extensions.get("nurture.inline_in_child") else None
        library = TemplateLibrary(
            app.config["TEMPLATES_DIR"],
            sources=sources_from(db.session),
            translations=translations_from(db.session),
            default_language=app.config["DEFAULT_LANGUAGE"],
            inline=inline,
        )
        app.extensions["nurture.templates"] = library
    return library


def send_messages(message_ids: list[int]) -> dict[str, int]:
    """Send the messages with these ids (those still queued); returns counts by outcome."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    job = get_current_job()
    recorder = BatchRecorder(job.id if job is not None else None)
    sender = sender_for(app)
    try:
        outcome = send_service(
            db.session, sender, runtime.clock(app).now, message_ids, observe=recorder
        )
    finally:
        db.session.remove()
        if isinstance(sender.transport, InstrumentedTransport):
            sender.transport.flush_metrics()
    recorder.finish(outcome, list(message_ids))
    return dict(outcome)


def close_sender(app: Flask) -> None:
    """Say goodbye to the SMTP relay (worker shutdown, tests)."""
    sender = app.extensions.pop("nurture.sender", None)
    if sender is not None:
        sender.transport.close()
