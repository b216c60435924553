"""Sending queued messages: claim, re-check the candidate, render, send, record, advance."""

from __future__ import annotations

import logging
import random
import smtplib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, scoped_session

from nurture.core import addresses
from nurture.core.audience import candidates as candidate_service
from nurture.core.campaigns.openings import job_context
from nurture.core.campaigns.timing import Timing, earliest_send, hold_for, zone
from nurture.core.compliance.identity import extra_headers
from nurture.core.content.mime import MailSettings, build_mime, new_message_id
from nurture.core.content.personalisation import build_context, recruiter_of
from nurture.core.content.rendering import CompiledTemplate, TemplateLibrary
from nurture.core.delivery.circuit import CircuitBreaker
from nurture.core.delivery.dkim import DkimSigner
from nurture.core.delivery.ratelimit import RateLimiter
from nurture.core.delivery.smtp import Failure, SmtpTransport, backoff, classify
from nurture.core.feedback import inbound
from nurture.core.feedback.tracking import instrument
from nurture.core.tokens import Tokens
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
    # Retries after a temporary failure: base × 2^(attempt-1) with jitter, at most the cap.
    retry_base: timedelta = timedelta(seconds=60)
    retry_cap: timedelta = timedelta(hours=4)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    soft_bounce_limit: int = 3
    rng: random.Random = field(default_factory=random.Random)
    # Team zone and frequency cap, checked at send time with each campaign's send window.
    timing: Timing = field(default_factory=Timing)


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
            # A stale or duplicate job must not send a retry before its time.
            or_(Message.retry_at.is_(None), Message.retry_at <= now),
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


def blocked_reason(candidate: Candidate, enrolment: Enrolment | None, suppressed: bool) -> str:
    """Why this candidate may not be mailed now, or "" when they may."""
    if candidate.status != CandidateStatus.ACTIVE:
        return candidate.status
    if suppressed:
        return "suppressed"
    if enrolment is not None and enrolment.status != EnrolmentStatus.ACTIVE:
        return f"enrolment {enrolment.status}"
    return ""


def topic_off(candidate: Candidate, campaign: Campaign) -> bool:
    """True when the candidate turned off this campaign's topic in the preference centre."""
    return bool(campaign.topic) and (candidate.topics or {}).get(campaign.topic) is False


def deferred_until(
    candidate: Candidate, campaign: Campaign, timing: Timing, now: datetime, sent: list[datetime]
) -> datetime | None:
    """When a mail held back by a pause, the frequency cap or the send window may go; else None.

    ``sent`` holds when the candidate was last mailed (within the cap's period at least).
    """
    when = earliest_send(
        now,
        window=campaign.send_window,
        tz=zone(candidate.timezone, timing.team_zone),
        sent=sent,
        cap=timing.cap,
        paused_until=candidate.paused_until,
    )
    return when if when > now else None


def advance(
    enrolment: Enrolment | None, step: Step, following: Step | None, when: datetime
) -> None:
    """Point the enrolment past ``step``: due ``following``'s delay after ``when``, or done."""
    if enrolment is None or enrolment.status != EnrolmentStatus.ACTIVE:
        return
    if enrolment.next_position != step.position:
        return  # already advanced past this step
    enrolment.next_position = step.position + 1
    if following is None:
        enrolment.status = EnrolmentStatus.COMPLETED
        enrolment.next_send_at = None
        enrolment.ended_at = when
    else:
        enrolment.next_send_at = when + timedelta(seconds=following.delay_seconds)


@dataclass
class Batch:
    """The rows a batch of claimed messages needs, each kind loaded in one query.

    Send-time checks (status, suppression, frequency cap) read the state as of the batch's
    start: for a batch of ``SEND_BATCH_SIZE`` (50) mails, well under a second before each goes
    at full speed, longer only while a relay's rate limit holds it. The batch's own sends are
    counted as they happen.
    """

    messages: list[Message]
    # The rows the messages point at, by id (held here: the session keeps them only weakly).
    candidates: dict[int, Candidate]
    enrolments: dict[int, Enrolment]
    campaigns: dict[int, Campaign]
    suppressed: set[str]
    # Per candidate, when they were mailed within the frequency cap's period.
    sent: dict[int, list[datetime]]
    # Every step of the batch's campaigns by id: the next step is at hand too.
    steps: dict[int, Step]
    jobs: dict[int, dict[str, str] | None] = field(default_factory=dict)

    def job(self, session: Session, campaign: Campaign) -> dict[str, str] | None:
        """The job a job-alert campaign's mails show, looked up once per batch."""
        if campaign.id not in self.jobs:
            self.jobs[campaign.id] = job_context(session, campaign)
        return self.jobs[campaign.id]

    def following(self, step: Step) -> Step | None:
        """The step after ``step`` in its campaign, or None for the last."""
        return self._positions.get((step.campaign_id, step.position + 1))

    def __post_init__(self) -> None:
        self._positions = {(s.campaign_id, s.position): s for s in self.steps.values()}


def load_batch(session: Session, message_ids: list[int], timing: Timing, now: datetime) -> Batch:
    """Load claimed messages with their candidates, enrolments, campaigns and steps at once."""

    def by_id(model, ids):  # noqa: ANN001, ANN202 - a mapped class and its rows by id
        found = session.scalars(
            select(model).where(model.id.in_(set(ids))).execution_options(populate_existing=True)
        )
        return {row.id: row for row in found}

    messages = sorted(by_id(Message, message_ids).values(), key=lambda m: m.id)
    candidates = by_id(Candidate, [m.candidate_id for m in messages])
    campaigns = by_id(Campaign, [m.campaign_id for m in messages])
    steps = session.scalars(select(Step).where(Step.campaign_id.in_(campaigns)))
    sent: dict[int, list[datetime]] = {}
    if timing.cap is not None:
        recent = session.execute(
            select(Message.candidate_id, Message.sent_at).where(
                Message.candidate_id.in_(candidates),
                Message.state == MessageState.SENT,
                Message.sent_at > now - timing.cap.period,
            )
        )
        for candidate_id, sent_at in recent:
            sent.setdefault(candidate_id, []).append(sent_at)
    return Batch(
        messages=messages,
        candidates=candidates,
        enrolments=by_id(Enrolment, [m.enrolment_id for m in messages if m.enrolment_id]),
        campaigns=campaigns,
        suppressed=addresses.suppressed_among(session, [c.email for c in candidates.values()]),
        sent=sent,
        steps={step.id: step for step in steps},
    )


def _record_failure(
    session: Session,
    sender: Sender,
    message: Message,
    candidate: Candidate,
    enrolment: Enrolment | None,
    failure: Failure,
    now: datetime,
) -> str:
    """A failed send: retried later with backoff, or failed with the reason (a bounce if it is)."""
    retry_after = None
    if failure.relay:
        sender.transport.close()
        sender.breaker.failure(failure.text, now)
        retry_after = sender.breaker.open_until(now)
    else:
        sender.transport.reset()
        sender.breaker.success()  # the relay answered about this recipient: the relay works
    if failure.bounce:
        report = inbound.Failure(
            candidate.email, failure.bounce == "hard", diagnostic=f"SMTP {failure.text}"
        )
        inbound.record_bounce(session, report, now, sender.soft_bounce_limit, messages=[message])
    if failure.transient and failure.bounce != "hard" and message.attempts < sender.max_attempts:
        delay = backoff(message.attempts, sender.retry_base, sender.retry_cap, sender.rng)
        message.state = MessageState.QUEUED
        # Not before then (the scheduler checks); no later than the relay's pause ends.
        message.retry_at = max(now + delay, retry_after or now)
        message.enqueued_at = None
        message.error = f"attempt {message.attempts} of {sender.max_attempts}: {failure.text}"
        if failure.unknown:
            # Trade-off: a relay that took the message but lost its reply gets it twice (with
            # the same Message-ID, which Gmail and others collapse); never trying again would
            # lose every message whose DATA the relay dropped. Losing mail is the worse fault.
            message.error += " (delivery unknown; retried with the same Message-ID)"
        message.error = message.error[:2000]
        return message.state
    message.state = MessageState.FAILED
    if failure.bounce == "hard":
        message.error = f"hard bounce: {failure.text}"[:2000]
    elif failure.transient:
        message.error = f"gave up after {message.attempts} attempts: {failure.text}"[:2000]
    else:
        message.error = f"refused: {failure.text}"[:2000]
    if enrolment is not None:
        candidate_service.end_enrolments(session, candidate, "send_failed", now)
    return message.state


def send_one(
    session: Session, sender: Sender, batch: Batch, message: Message, now: datetime
) -> str:
    """Send a claimed message of ``batch`` and record the outcome; returns the new state."""
    candidate = batch.candidates[message.candidate_id]
    campaign = batch.campaigns[message.campaign_id]
    step = batch.steps[message.step_id]
    enrolment = batch.enrolments.get(message.enrolment_id) if message.enrolment_id else None

    reason = blocked_reason(candidate, enrolment, candidate.email in batch.suppressed)
    if reason:
        message.state = MessageState.SKIPPED
        message.error = reason
        if enrolment is not None and enrolment.status == EnrolmentStatus.ACTIVE:
            candidate_service.end_enrolments(session, candidate, reason, now)
        return message.state
    if topic_off(candidate, campaign):
        message.state = MessageState.SKIPPED
        message.error = "topic off"
        if enrolment is not None and enrolment.status == EnrolmentStatus.ACTIVE:
            enrolment.status = EnrolmentStatus.EXITED
            enrolment.exit_reason = "topic off"
            enrolment.next_send_at = None
            enrolment.ended_at = now
        return message.state
    if not condition_met(session, enrolment, step):
        message.state = MessageState.SKIPPED
        message.error = f"condition {step.condition} not met"
        advance(enrolment, step, batch.following(step), now)
        return message.state
    sent = batch.sent.setdefault(candidate.id, [])
    held = hold_for(candidate, campaign, step, sender.timing, now, sent)
    if held is not None:
        # Deferred, not dropped: back in the queue until then; a deferral is no failed attempt.
        message.state = MessageState.QUEUED
        message.retry_at, message.error = held.until, held.reason  # the pages say why it waits
        message.enqueued_at = None
        message.attempts = max(message.attempts - 1, 0)
        return "deferred"

    tokens, settings = sender.tokens, sender.settings
    unsubscribe_url = tokens.unsubscribe_url(candidate.id, message.id)
    preferences_url = tokens.preferences_url(candidate.id, message.id)
    compiled = sender.step_templates.get(step.id)
    if compiled is None:
        compiled = sender.step_templates[step.id] = compiled_for(sender.library, step)
    # Signing URLs costs per recipient: only for templates that show them.
    context = build_context(
        candidate,
        campaign,
        settings,
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
        job=batch.job(session, campaign),
        rating_urls=(
            tokens.rating_urls(message.id) if "rating_urls" in compiled.variables else None
        ),
        reconsent_url=(
            tokens.reconsent_url(candidate.id, message.id)
            if "reconsent_url" in compiled.variables
            else ""
        ),
    )
    mail = compiled.render(context)
    # Own links (unsubscribe, preferences, rating, re-consent) go direct, never via /c/;
    # a candidate who opted out of tracking gets no pixel and their links as written.
    html = instrument(
        mail.html,
        tokens,
        message.id,
        keep=tuple(f"{tokens.base_url}/{path}/" for path in ("u", "p", "r", "k")),
        track_opens=tokens.open_tracking and not candidate.tracking_opt_out,
        track_clicks=not candidate.tracking_opt_out,
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
        headers=extra_headers(campaign),
    )
    if sender.dkim is not None:
        data = sender.dkim.sign(data)
    try:
        sender.transport.send(from_email, candidate.email, data)
    except (smtplib.SMTPException, OSError) as exc:
        failure = classify(exc)
        return _record_failure(session, sender, message, candidate, enrolment, failure, now)
    message.state = MessageState.SENT
    message.sent_at = now
    message.error = ""
    sent.append(now)  # the cap counts this mail for the candidate's next one in the batch
    advance(enrolment, step, batch.following(step), now)
    return message.state


def send_messages(
    session: Session, sender: Sender, now: Callable[[], datetime], message_ids: Iterable[int]
) -> Counter[str]:
    """Claim and send a batch of messages over one SMTP connection; returns counts by outcome."""
    outcome: Counter[str] = Counter()
    sender.step_templates.clear()  # a new batch sees edited templates
    sender.breaker.sync()  # another worker may have paused the relay
    paused = sender.breaker.open_until(now())
    if paused is not None:
        outcome["deferred"] += _hold(session, message_ids, paused)
        return outcome
    claimed = claim(session, message_ids, now())
    if not claimed:
        return outcome
    # Rows stay loaded across the per-message commits: the batch reads each once.
    session = session() if isinstance(session, scoped_session) else session
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        batch = load_batch(session, claimed, sender.timing, now())
        for index, message in enumerate(batch.messages):
            paused = sender.breaker.open_until(now())
            if paused is not None:
                # The relay keeps failing: the rest of the batch waits out the cooldown.
                rest = [m.id for m in batch.messages[index:]]
                outcome["deferred"] += _release(session, rest, paused)
                break
            outcome[_send_and_record(session, sender, batch, message, now())] += 1
    finally:
        session.expire_on_commit = expire_on_commit
        session.expire_all()  # what the caller reads next comes from the database
    return outcome


def _send_and_record(
    session: Session, sender: Sender, batch: Batch, message: Message, now: datetime
) -> str:
    """Send one message of the batch and commit its outcome; returns the outcome."""
    message_id = message.id
    if _domain_deferred(sender, message, batch.candidates[message.candidate_id].email, now):
        session.commit()
        return "deferred"
    sender.limiter.wait_for_relay()
    try:
        state = send_one(session, sender, batch, message, now)
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
    if state == MessageState.SENT:
        sender.breaker.success()
    # Record each outcome at once: a crash later in the batch must not resend this one.
    session.commit()
    return state


def _domain_deferred(sender: Sender, message: Message, email: str, now: datetime) -> bool:
    """Out of the recipient domain's budget: back in the queue for a moment, no attempt spent."""
    wait = sender.limiter.domain_wait(email)
    if wait <= 0:
        return False
    message.state = MessageState.QUEUED
    message.retry_at = now + timedelta(seconds=max(wait, 1.0))
    message.enqueued_at = None
    message.attempts = max(message.attempts - 1, 0)
    return True


def _hold(session: Session, message_ids: Iterable[int], until: datetime) -> int:
    """Unclaimed queued messages wait for the relay's cooldown to end; returns how many."""
    ids = sorted(set(message_ids))
    if not ids:
        return 0
    result = session.execute(
        update(Message)
        .where(
            Message.id.in_(ids),
            Message.state == MessageState.QUEUED,
            # A mail deferred past the pause (send window, cap) keeps its later time.
            or_(Message.retry_at.is_(None), Message.retry_at < until),
        )
        .values(retry_at=until, enqueued_at=None)
    )
    session.commit()
    return result.rowcount or 0


def _release(session: Session, message_ids: list[int], until: datetime) -> int:
    """Claimed messages go back to the queue until ``until``, their claim not counted."""
    result = session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.state == MessageState.SENDING)
        .values(
            state=MessageState.QUEUED,
            retry_at=until,
            enqueued_at=None,
            attempts=Message.attempts - 1,
        )
    )
    session.commit()
    return result.rowcount or 0
