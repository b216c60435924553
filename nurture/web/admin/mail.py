"""What the admin's pages share about a mail: rendering it for a real candidate as it will go
out, and sending a test of it, from the template editor and from every confirm page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import current_app, url_for

from nurture import runtime
from nurture.core.content import templates as template_service
from nurture.core.content.mime import MailSettings
from nurture.core.content.rendering import CompiledTemplate, RenderedMail
from nurture.core.delivery import proofs
from nurture.core.delivery.dkim import DkimError
from nurture.core.delivery.sending import compiled_for
from nurture.core.delivery.smtp import SmtpSettings, SmtpTransport
from nurture.core.errors import ValidationError
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Step
from nurture.tasks.sending import dkim_signer, template_library


class TestProblem(Exception):
    """A test mail could not be sent; the message says why, for a flash."""

    __test__ = False


def settings() -> MailSettings:
    """The sender and footer settings real mail uses."""
    return MailSettings.from_config(current_app.config)


def tokens(mail_settings: MailSettings) -> Tokens:
    """The signer of real unsubscribe and preference links."""
    return Tokens(current_app.config["SECRET_KEY"], mail_settings.base_url)


def transport() -> SmtpTransport:
    """A connection to the configured SMTP relay (one per test send)."""
    config = current_app.config
    return SmtpTransport(SmtpSettings.from_url(config["SMTP_URL"], config["SMTP_TIMEOUT"]))


def compiled(template: str = "", subject: str = "", step: Step | None = None) -> CompiledTemplate:
    """The compiled mail of a step, or of a named template with an optional subject line."""
    library = template_library(current_app)
    if step is not None:
        return compiled_for(library, step)
    return library.get(template, subject=subject)


def render(
    mail: CompiledTemplate, candidate: Candidate, job: dict[str, Any] | None = None
) -> RenderedMail:
    """What ``candidate`` gets (links as written: previews are not tracked)."""
    mail_settings = settings()
    return template_service.render_preview(
        mail, mail_settings, tokens(mail_settings), candidate, job
    )


def label(candidate: Candidate) -> str:
    """How a page names the candidate a preview is for."""
    if candidate.id is None:
        return f"a sample candidate, {candidate.full_name}"
    return f"{candidate.full_name or candidate.email} <{candidate.email}>"


def send_test(
    mail: CompiledTemplate, candidate: Candidate, to: str, job: dict[str, Any] | None = None
) -> str:
    """Send one "[Test]" mail as ``candidate`` would get it; returns what to tell the user.

    ValidationError (at ``to``) for a bad or suppressed address, TestProblem when the relay or
    DKIM refuses; nothing is recorded either way.
    """
    if not (to or "").strip():
        raise ValidationError("no address", {"to": "give the address to send the test to"})
    try:
        sent = proofs.send_test(
            db.session,
            transport(),
            settings(),
            mail,
            candidate,
            to,
            runtime.now(),
            dkim=dkim_signer(current_app._get_current_object()),
            job=job,
        )
    except DkimError as exc:
        raise TestProblem(f"The test was not sent: DKIM is set up but unusable: {exc}") from None
    except proofs.TestSendFailed as exc:
        raise TestProblem(f"The SMTP server did not take the test: {exc}") from None
    return (
        f"Sent “[Test] {sent.subject}” to {to.strip()}, as {label(candidate)} would get it. "
        "Test mails are not tracked, and their unsubscribe link does nothing."
    )


def first_until(when: datetime | None) -> str:
    """ ", the first until 11 Dec 09:00 UTC" for a list of waiting mail (text, no markup)."""
    return f", the first until {when.strftime('%d %b %H:%M UTC').lstrip('0')}" if when else ""


@dataclass
class Preview:
    """A mail shown on a confirm page: its real subject, a frame and a test-send form."""

    subject: str
    frame_url: str
    candidate: str
    # What the test form posts along: template / step / subject / candidate / job.
    params: dict[str, Any] = field(default_factory=dict)
    test_url: str = ""
    back: str = ""
    problem: str = ""


def preview(
    candidate: Candidate | None,
    *,
    template: str = "",
    subject: str = "",
    step: Step | None = None,
    job_id: int | None = None,
    job: dict[str, Any] | None = None,
    back: str = "",
) -> Preview:
    """The mail a confirm page shows, rendered for ``candidate`` (else the sample one)."""
    person = candidate or template_service.sample_candidate()
    params: dict[str, Any] = {"candidate": person.id or ""}
    if step is not None:
        params["step"] = step.id
    else:
        params.update(template=template, subject=subject)
    if job_id is not None:
        params["job"] = job_id
    try:
        mail = render(compiled(template, subject, step), person, job)
    except ValidationError as exc:
        problem = "; ".join(exc.fields.values()) or exc.message
        return Preview("", "", label(person), params, problem=problem)
    return Preview(
        subject=mail.subject,
        frame_url=url_for("admin.email_templates.mail_frame", **params),
        candidate=label(person),
        params=params,
        test_url=url_for("admin.email_templates.mail_test"),
        back=back,
    )
