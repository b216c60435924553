"""The periodic pass that forwards candidates' replies to their recruiters."""

from __future__ import annotations

from flask import Flask

from nurture import runtime
from nurture.core.delivery.forwarding import forward_replies
from nurture.core.delivery.smtp import SmtpSettings, SmtpTransport
from nurture.core.feedback.replies import ForwardSettings
from nurture.extensions import db
from nurture.tasks.sending import dkim_signer


def forward_pending_replies(app: Flask) -> dict[str, int]:
    """Forward what the inbound pass recorded, over a connection of its own."""
    transport = SmtpTransport(
        SmtpSettings.from_url(app.config["SMTP_URL"], app.config["SMTP_TIMEOUT"])
    )
    try:
        return forward_replies(
            db.session,
            transport,
            ForwardSettings.from_config(app.config),
            runtime.clock(app).now,
            dkim=dkim_signer(app),
            max_attempts=int(app.config.get("REPLY_FORWARD_MAX_ATTEMPTS", 8)),
        )
    finally:
        transport.close()
        db.session.remove()
