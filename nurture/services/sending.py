"""Sending queued messages: claim, re-check the candidate, render, send, record, advance."""

from __future__ import annotations

import logging
import smtplib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from nurture.clock import Clock
from nurture.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    Event,
    EventKind,
    Message,
    MessageState,
    Step,
)
from nurture.services import candidates as candidate_service
from nurture.services.dkim import DkimSigner
from nurture.services.mail import MailSettings, build_mime, new_message_id
from nurture.services.personalisation import build_context, recruiter_of
from nurture.services.rendering import CompiledTemplate, TemplateLibrary
from nurture.services.smtp import SmtpTransport
from nurture.services.tracking import Tokens, instrument

log = logging.getLogger(__name__)


@dataclass
class Sender:
    """What sending needs, gathered once per worker process."""

    settings: MailSettings
    library: TemplateLibrary
    tokens: Tokens
    transport: SmtpTransport
    # Compiled template per step for the batch at hand: one lookup per step, not per message.
    step_templates: dict[int, CompiledTemplate] = field(default_factory=dict)
    max_attempts: int = 5
    dkim: DkimSigner | None = None


def claim(session: Session, message_ids: Iterable[int], now: datetime) -> list[int]:
    """Atomically move queued messages of active campaigns to ``sending``; returns the winners.

    Two workers given the same ids race on this one UPDATE: each row changes state once, so
    each message is claimed, and sent, by one of them only.
    """
    ids = sorted(set(message_ids))
    if not ids:
        return []
    active = select(Campaign.id).where(Campaign.status == CampaignStatus.ACTIVE)
    claimed = session.scalars(
        update(Message)
        .where(
            Message.id.in_(ids),
            Message.state == MessageState.QUEUED,
            Message.campaign_id.in_(active),
        )
        .values(state=MessageState.SENDING, claimed_at=now, attempts=Message.attempts + 1)
        .returning(Message.id)
    ).all()
    session.commit()
    return sorted(claimed)


def compiled_for(library: TemplateLibrary, step: Step) -> CompiledTemplate:
    """The compiled template of a step (an admin-edited template, a starter file or its own HTML).

    Templates are looked up at every send, so an edited template reaches the next mail; the
    compiled form is cached by content, so each version is inlined once.
    """
    if step.template:
        return library.get(step.template, subject=step.subject)
    return library.compile(step.html, step.text or None, subject=step.subject)


def _previous_message(session: Session, enrolment: Enrolment, step: Step) -> Message | None:
    return session.scalar(
        select(Message)
        .join(Step, Step.id == Message.step_id)
        .where(Message.enrolment_id == enrolment.id, Step.position == step.position - 1)
    )


def condition_met(session: Session, enrolment: Enrolment | None, step: Step) -> bool:
    """Whether a step's condition on the previous mail holds (machine hits don't count)."""
    if not step.condition or enrolment is None:
        return True
    previous = _previous_message(session, enrolment, step)
    if previous is None:
        return step.condition == "previous_not_opened"
    kind = EventKind.CLICK if step.condition == "previous_clicked" else EventKind.OPEN
    happened = session.scalar(
        select(
            exists().where(
                Event.message_id == previous.id, Event.kind == kind, Event.machine.is_(False)
            )
        )
    )
    return not happened if step.condition == "previous_not_opened" else bool(happened)


def blocked_reason(session: Session, candidate: Candidate, enrolment: Enrolment | None) -> str:
    """Why this candidate may not be mailed now, or "" when they may."""
    if candidate.status != CandidateStatus.ACTIVE:
        return candidate.status
    if candidate_service.is_suppressed(session, candidate.email):
        return "suppressed"
    if enrolment is not None and enrolment.status != EnrolmentStatus.ACTIVE:
        return f"enrolment {enrolment.status}"
    return ""


def advance(session: Session, enrolment: Enrolment | None, step: Step, when: datetime) -> None:
    """Point the enrolment at the step after ``step``, due that step's delay after ``when``."""
    if enrolment is None or enrolment.status != EnrolmentStatus.ACTIVE:
        return
    if enrolment.next_position != step.position:
        return  # already advanced past this step
    following = session.scalar(
        select(Step).where(Step.campaign_id == step.campaign_id, Step.position == step.position + 1)
    )
    enrolment.next_position = step.position + 1
    if following is None:
        enrolment.status = EnrolmentStatus.COMPLETED
        enrolment.next_send_at = None
        enrolment.ended_at = when
    else:
        enrolment.next_send_at = when + timedelta(seconds=following.delay_seconds)


def _is_permanent(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return False


def send_one(session: Session, sender: Sender, message: Message, now: datetime) -> str:
    """Send a claimed message and record the outcome; returns the new state."""
    candidate = session.get(Candidate, message.candidate_id)
    step = session.get(Step, message.step_id)
    campaign = session.get(Campaign, message.campaign_id)
    enrolment = session.get(Enrolment, message.enrolment_id) if message.enrolment_id else None
    assert candidate is not None and step is not None and campaign is not None

    reason = blocked_reason(session, candidate, enrolment)
    if reason:
        message.state = MessageState.SKIPPED
        message.error = reason
        if enrolment is not None and enrolment.status == EnrolmentStatus.ACTIVE:
            candidate_service.end_enrolments(session, candidate, reason, now)
        return message.state
    if not condition_met(session, enrolment, step):
        message.state = MessageState.SKIPPED
        message.error = f"condition {step.condition} not met"
        advance(session, enrolment, step, now)
        return message.state

    tokens, settings = sender.tokens, sender.settings
    unsubscribe_url = tokens.unsubscribe_url(candidate.id, message.id)
    preferences_url = tokens.preferences_url(candidate.id, message.id)
    context = build_context(
        candidate,
        campaign,
        settings,
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
    )
    compiled = sender.step_templates.get(step.id)
    if compiled is None:
        compiled = sender.step_templates[step.id] = compiled_for(sender.library, step)
    mail = compiled.render(context)
    html = instrument(
        mail.html, tokens, message.id, keep=(f"{tokens.base_url}/u/", f"{tokens.base_url}/p/")
    )
    from_name, from_email = recruiter_of(candidate, campaign, settings)
    message.message_id = message.message_id or new_message_id(settings.domain, message.id)
    message.to_address = candidate.email
    message.subject = mail.subject
    data = build_mime(
        from_name=from_name,
        from_email=from_email,
        to_email=candidate.email,
        reply_to=from_email,
        subject=mail.subject,
        html=html,
        text=mail.text,
        message_id=message.message_id,
        date=now,
        unsubscribe_url=unsubscribe_url,
        list_id=f"{campaign.name} <campaign-{campaign.id}.{settings.list_id_domain}>",
    )
    if sender.dkim is not None:
        data = sender.dkim.sign(data)
    try:
        sender.transport.send(from_email, candidate.email, data)
    except (smtplib.SMTPException, OSError) as exc:
        permanent = _is_permanent(exc)
        message.error = f"{type(exc).__name__}: {exc}"[:2000]
        if permanent or message.attempts >= sender.max_attempts:
            message.state = MessageState.FAILED
            if enrolment is not None:
                candidate_service.end_enrolments(session, candidate, "send_failed", now)
        else:
            # Back in the queue; the scheduler enqueues it again after a pause.
            message.state = MessageState.QUEUED
            message.enqueued_at = now
        if permanent:
            sender.transport.reset()
        else:
            sender.transport.close()
        return message.state
    message.state = MessageState.SENT
    message.sent_at = now
    message.error = ""
    advance(session, enrolment, step, now)
    return message.state


def send_messages(
    session: Session, sender: Sender, clock: Clock, message_ids: Iterable[int]
) -> Counter[str]:
    """Claim and send a batch of messages over one SMTP connection; returns counts by outcome."""
    outcome: Counter[str] = Counter()
    sender.step_templates.clear()  # a new batch sees edited templates
    for message_id in claim(session, message_ids, clock.now()):
        message = session.get(Message, message_id)
        if message is None:
            continue
        try:
            state = send_one(session, sender, message, clock.now())
        except Exception:
            # A bug or a broken template must not leave the row in "sending" forever.
            session.rollback()
            log.exception("message %s could not be sent", message_id)
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(state=MessageState.FAILED, error="internal error while rendering")
            )
            state = MessageState.FAILED
        # Record each outcome at once: a crash later in the batch must not resend this one.
        session.commit()
        outcome[state] += 1
    return outcome
