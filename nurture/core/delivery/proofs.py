"""Proofs: one test mail of a template to a colleague, signed and sent as the real one will be,
but with no ledger row, no tracking and an inert unsubscribe link."""

from __future__ import annotations

import secrets
import smtplib
from datetime import datetime

from sqlalchemy.orm import Session

from nurture.core import addresses
from nurture.core.content.mime import MailSettings, build_mime
from nurture.core.content.personalisation import recruiter_of
from nurture.core.content.rendering import CompiledTemplate, RenderedMail
from nurture.core.content.templates import preview_campaign, preview_context
from nurture.core.delivery.dkim import DkimSigner
from nurture.core.delivery.smtp import SmtpTransport
from nurture.core.errors import ValidationError
from nurture.models.candidates import Candidate


class TestSendFailed(Exception):
    """The SMTP relay did not take the test mail."""

    __test__ = False  # not a pytest test class, whatever its name


def send_test(
    session: Session,
    transport: SmtpTransport,
    settings: MailSettings,
    compiled: CompiledTemplate,
    candidate: Candidate,
    to: str,
    now: datetime,
    *,
    dkim: DkimSigner | None = None,
    job: dict[str, str] | None = None,
) -> RenderedMail:
    """Mail one test of a template, as ``candidate`` would get it, to ``to``.

    No ledger row, no events, no tracking; the subject says "[Test]". Its unsubscribe link
    is inert, so a colleague clicking it cannot unsubscribe the candidate. A suppressed
    address is never mailed, not even a test. Signed with ``dkim`` as campaign mail is, so
    the test lands (and authenticates) as the real mail will. ``job`` is the opening a job
    alert shows (a sample one otherwise).
    """
    address = addresses.normalise_email(to, "to")
    reason = addresses.suppression_reason(session, address)
    if reason is not None:
        raise ValidationError(
            "the address is suppressed",
            {
                "to": f"{address} is on the suppression list ({reason}); nurture never mails it, "
                "not even a test"
            },
        )
    # In the language the template is written in: a German test has the German footer.
    context = preview_context(settings, None, candidate, job, language=compiled.language)
    mail = compiled.render(context)
    from_name, from_email = recruiter_of(candidate, preview_campaign(), settings, compiled.language)
    data = build_mime(
        from_name=from_name,
        from_email=from_email,
        to_email=address,
        reply_to=from_email,
        subject=f"[Test] {mail.subject}",
        html=mail.html,
        text=mail.text,
        message_id=f"<nurture.test.{secrets.token_hex(8)}@{settings.domain}>",
        date=now,
        unsubscribe_url=context["unsubscribe_url"],
        list_id=f"Template tests <tests.{settings.list_id_domain}>",
        headers={"X-Nurture-Test": "template test send"},
    )
    if dkim is not None:
        data = dkim.sign(data)
    try:
        transport.send(from_email, address, data)
    except (smtplib.SMTPException, OSError) as exc:
        raise TestSendFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        transport.close()
    return mail
