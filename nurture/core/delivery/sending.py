"""Sending queued messages: claim, re-check the candidate, render, send, record, advance."""

from __future__ import annotations

import functools
import logging
import random
import smtplib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, inspect, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session
from sqlalchemy.orm.attributes import set_committed_value

from nurture.core import addresses, languages
from nurture.core.audience import candidates as candidate_service
from nurture.core.campaigns import abtest
from nurture.core.campaigns.openings import opening_context
from nurture.core.campaigns.timing import Timing, earliest_send, hold_for, zone
from nurture.core.compliance.identity import extra_headers
from nurture.core.content.mime import MailSettings, build_mime, ledger_message_id
from nurture.core.content.personalisation import build_context, recruiter_of
from nurture.core.content.rendering import (
    CompiledTemplate,
    RenderError,
    TemplateLibrary,
    with_preheader,
)
from nurture.core.delivery.circuit import CircuitBreaker
from nurture.core.delivery.dkim import DkimSigner
from nurture.core.delivery.leases import Lease
from nurture.core.delivery.outages import is_outage, patiently, reset
from nurture.core.delivery.ratelimit import RateLimiter
from nurture.core.delivery.smtp import Failure, SmtpTransport, backoff, classify
from nurture.core.feedback import inbound
from nurture.core.feedback.referrals import opening_of, referral_context
from nurture.core.feedback.tracking import instrument
from nurture.core.tokens import Tokens
from nurture.models import (
    HELD_FOR_AB_WINNER,
    HELD_FOR_STRENGTHS,
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
    StepCondition,
)
from nurture.models.base import rows_changed

log = logging.getLogger(__name__)

# Send-time checks (candidate status, suppression, enrolment, campaign paused) read state at most
# this many seconds old when a mail's SMTP transaction starts: re-read every half second of
# sending, so a pause or an unsubscribe stops the mail within a second, whatever the relay's pace.
CHECKS_MAX_AGE = 0.5
# A re-read reaches at least this many mails ahead (behind a slow relay, the next few).
REFRESH_WINDOW = 8


# A mail held for the recruiter's note is looked at again this often; writing the note releases
# it at once (``audience.candidates.upsert_candidate``), this is only the safety net.
STRENGTHS_RECHECK = timedelta(hours=1)


def _never() -> bool:
    return False


@dataclass
class Sender:
    """What sending needs, gathered once per worker process."""

    settings: MailSettings
    library: TemplateLibrary
    tokens: Tokens
    transport: SmtpTransport
    # Compiled template per step and reader's language for the batch at hand: one lookup per
    # step and language, not per message.
    step_templates: dict[tuple[int, str], CompiledTemplate] = field(default_factory=dict)
    # The same per A/B variant of a step: (step id, variant position).
    variant_templates: dict[tuple[int, int], CompiledTemplate] = field(default_factory=dict)
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
    # The worker's heartbeat: claims carry its name, and it sends only while the lease holds.
    # None when sending in-process (tests, one-off commands): then only the stuck timer
    # returns a claim whose sender died.
    lease: Lease | None = None
    # Asked before each mail: True once the worker should stop (its warm shutdown).
    stopping: Callable[[], bool] = _never
    checks_max_age: float = CHECKS_MAX_AGE
    # Real time, for the age of the checks; and how to wait out a database outage.
    monotonic: Callable[[], float] = time.monotonic
    wait: Callable[[float], None] = time.sleep

    @property
    def owner(self) -> str | None:
        """The name claims are made under (the lease's), or None."""
        return self.lease.name if self.lease is not None else None


def claim(
    session: Session, message_ids: Iterable[int], now: datetime, owner: str | None = None
) -> list[int]:
    """Atomically move queued messages of active campaigns to ``sending``; returns the winners.

    Two workers given the same ids race on this one UPDATE: each row changes state once, so
    each message is claimed, and sent, by one of them only. ``owner`` names the claiming
    worker's lease, so the scheduler can hand the rows back once that worker is gone.
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
        .values(
            state=MessageState.SENDING,
            claimed_at=now,
            claimed_by=owner,
            attempts=Message.attempts + 1,
        )
        .returning(Message.id)
    ).all()
    session.commit()
    return sorted(claimed)


def compiled_for(library: TemplateLibrary, step: Step, language: str = "") -> CompiledTemplate:
    """The compiled template of a step (an admin-edited template, a starter file or its own HTML)
    in the translation a reader of ``language`` gets (see ``languages.choose``).

    Templates are looked up at every send, so an edited template reaches the next mail; the
    compiled form is cached by content and language, so each version is inlined once.
    """
    translations = step.translations or {}
    if step.template:
        subjects = {code: part.get("subject", "") for code, part in translations.items()}
        return library.get(
            step.template, subject=step.subject, language=language, subjects=subjects
        )
    # A step's own HTML is written in the team's language; its translations carry their HTML.
    written = [code for code, part in translations.items() if part.get("html")]
    chosen = languages.choose(
        language, [library.default_language, *written], library.default_language
    )
    if chosen and chosen != library.default_language:
        part = translations[chosen]
        return library.compile(
            part["html"],
            part.get("text") or None,
            subject=part.get("subject") or step.subject,
            language=chosen,
        )
    return library.compile(step.html, step.text or None, subject=step.subject)


def compiled_variant(library: TemplateLibrary, step: Step, position: int) -> CompiledTemplate:
    """The step's template with A/B variant ``position``'s subject and preview text."""
    variant = step.variants[position]
    if step.template:
        html, text, own_subject = library.source(step.template)
    else:
        html, text, own_subject = step.html, step.text or None, ""
    if variant.preheader:
        html = with_preheader(html, variant.preheader)
    return library.compile(html, text, subject=variant.subject or step.subject or own_subject)


def ab_variant_for(session: Session, step: Step, message: Message, now: datetime) -> int | None:
    """The A/B variant this mail gets (its own, the winner's, or its sample group's), or None
    when it must wait for the winner (or the step tests nothing: then -1)."""
    if not abtest.has_test(step):
        return -1
    if message.ab_variant is not None:
        return message.ab_variant
    if step.ab_winner is not None:
        return step.ab_winner
    group = abtest.ab_group(message.id, step.ab_sample_percent, len(step.variants))
    if group is not None and step.ab_started_at is None:
        # The test's clock starts with its first mail (one UPDATE: the first worker wins).
        session.execute(
            update(Step)
            .where(Step.id == step.id, Step.ab_started_at.is_(None))
            .values(ab_started_at=now)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(step, "ab_started_at", now)
    return group


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
        return step.condition == StepCondition.PREVIOUS_NOT_OPENED
    kind = EventKind.CLICK if step.condition == StepCondition.PREVIOUS_CLICKED else EventKind.OPEN
    happened = session.scalar(
        select(
            exists().where(
                Event.message_id == previous.id, Event.kind == kind, Event.machine.is_(False)
            )
        )
    )
    return not happened if step.condition == StepCondition.PREVIOUS_NOT_OPENED else bool(happened)


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

    Send-time checks (status, suppression, enrolment, campaign status) read state no older than
    ``Sender.checks_max_age``: ``refresh`` re-reads it for the mails still to go whenever the
    last read is older (at full speed once per few hundred mails; before each mail behind a
    slow relay). The frequency cap counts the batch's own sends as they happen.
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
    openings: dict[int, tuple[int, str] | None] = field(default_factory=dict)
    # Whose claim the rows are in, and the lease's lapse count when they were claimed.
    owner: str | None = None
    lapses: int = 0
    # When (monotonic) the checks' state was read, for the mails up to which index (from
    # which one), and rows found no longer ours then.
    checked_at: float = 0.0
    covered: int = 0
    refreshed_at_index: int = 0
    lost: set[int] = field(default_factory=set)
    # A mail the relay accepted whose record the database did not take: written first when
    # the batch is given up, so it is never sent again.
    accepted: Accepted | None = None

    def job(self, session: Session, campaign: Campaign) -> dict[str, str] | None:
        """The job a job-alert campaign's mails show, looked up once per batch."""
        if campaign.id not in self.jobs:
            self.jobs[campaign.id] = opening_context(session, campaign)
        return self.jobs[campaign.id]

    def opening(self, session: Session, campaign: Campaign) -> tuple[int, str] | None:
        """The (id, title) of the opening a job alert's referral links name, once per batch."""
        if campaign.id not in self.openings:
            self.openings[campaign.id] = opening_of(session, campaign)
        return self.openings[campaign.id]

    def following(self, step: Step) -> Step | None:
        """The step after ``step`` in its campaign, or None for the last."""
        return self._positions.get((step.campaign_id, step.position + 1))

    def __post_init__(self) -> None:
        self._positions = {(s.campaign_id, s.position): s for s in self.steps.values()}
        # Kept apart from the rows: a rollback expires them, and reading an id would need SQL.
        self.ids = [m.id for m in self.messages]
        self.covered = len(self.ids)  # loading read the state of them all

    def refresh(self, session: Session, index: int, at: float) -> None:
        """Re-read what the send-time checks use, for the next mails from ``index``: one SELECT
        of the columns that change (candidate status, topics and pause; enrolment and campaign
        status; whether the row is still ours) and one of the suppressions.

        It reaches half as many mails again as went out since the last read (at least
        ``REFRESH_WINDOW``): as far as the next read at a steady pace (a faster one reaches the
        end of the window first, which reads again), without re-reading a whole 500-mail batch
        twice a second. Values are set as loaded, so nothing is written back.
        """
        window = max(REFRESH_WINDOW, (index - self.refreshed_at_index) * 3 // 2)
        ahead = self.messages[index : index + window]
        ids = self.ids[index : index + window]
        rows = session.execute(
            select(
                Message.id,
                Message.state,
                Message.claimed_by,
                Candidate.id,
                Candidate.status,
                Candidate.topics,
                Candidate.paused_until,
                Campaign.id,
                Campaign.status,
                Enrolment.id,
                Enrolment.status,
            )  # fmt: skip
            .join(Candidate, Candidate.id == Message.candidate_id)
            .join(Campaign, Campaign.id == Message.campaign_id)
            .outerjoin(Enrolment, Enrolment.id == Message.enrolment_id)
            .where(Message.id.in_(ids))
        ).all()
        ours = set()
        for (message_id, state, claimed_by, candidate_id, status, topics, paused_until,
             campaign_id, campaign_status, enrolment_id, enrolment_status) in rows:  # fmt: skip
            candidate = self.candidates[candidate_id]
            _loaded(candidate, "status", status)
            _loaded(candidate, "topics", topics)
            _loaded(candidate, "paused_until", paused_until)
            _loaded(self.campaigns[campaign_id], "status", campaign_status)
            if enrolment_id is not None:
                _loaded(self.enrolments[enrolment_id], "status", enrolment_status)
            if state == MessageState.SENDING and claimed_by == self.owner:
                ours.add(message_id)
        self.lost |= set(ids) - ours
        self.suppressed = addresses.suppressed_among(
            session, [self.candidates[m.candidate_id].email for m in ahead]
        )
        self.checked_at, self.covered, self.refreshed_at_index = at, index + len(ids), index


def _loaded(row: object, name: str, value: object) -> None:
    """Set an attribute as if loaded (no change to write back); most re-reads change nothing."""
    if getattr(row, name) != value:
        set_committed_value(row, name, value)


@dataclass(frozen=True)
class Accepted:
    """The record of a mail the relay took: the ledger row's and the enrolment's new values."""

    message_pk: int
    message: dict[str, Any]
    # The enrolment advanced past ``position`` (written only if it still waits for that step).
    enrolment_pk: int | None = None
    position: int = 0
    enrolment: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, message: Message, enrolment: Enrolment | None, step: Step) -> Accepted:
        """Read the outcome off the objects' loaded values (no SQL)."""
        loaded = inspect(message).dict
        values = {k: loaded.get(k) for k in _SENT_FIELDS}
        if enrolment is None:
            return cls(message.id, values)
        advanced = inspect(enrolment).dict
        return cls(
            message.id,
            values,
            enrolment.id,
            step.position,
            {k: advanced.get(k) for k in _ADVANCE_FIELDS},
        )

    def write(self, session: Session) -> None:
        """Write the outcome (again: idempotent, a COMMIT that did go through changes nothing).

        Plain Core statements on the session's connection: an ORM-enabled UPDATE would search
        the whole identity map (the batch) for the rows to synchronise, at every mail.
        """
        connection = session.connection()
        connection.execute(_WRITE_MESSAGE, {"pk": self.message_pk, **self.message})
        if self.enrolment_pk is not None:
            connection.execute(
                _ADVANCE_ENROLMENT,
                {"pk": self.enrolment_pk, "position": self.position, **self.enrolment},
            )


_SENT_FIELDS = ("state", "sent_at", "error", "message_id", "to_address", "subject", "ab_variant")
_WRITE_MESSAGE = (
    update(cast(Table, Message.__table__))
    .where(Message.__table__.c.id == bindparam("pk"))
    .values({name: bindparam(name) for name in _SENT_FIELDS})
)
_ADVANCE_FIELDS = ("next_position", "next_send_at", "status", "ended_at")
# Only if the enrolment still waits for that step (another path may have moved it on).
_ADVANCE_ENROLMENT = (
    update(cast(Table, Enrolment.__table__))
    .where(
        Enrolment.__table__.c.id == bindparam("pk"),
        Enrolment.__table__.c.status == EnrolmentStatus.ACTIVE,
        Enrolment.__table__.c.next_position == bindparam("position"),
    )
    .values({name: bindparam(name) for name in _ADVANCE_FIELDS})
)


class ClaimLapsed(Exception):
    """The worker's lease lapsed after the batch was claimed: the rows may be someone else's."""


def load_batch(session: Session, message_ids: list[int], timing: Timing, now: datetime) -> Batch:
    """Load claimed messages with their candidates, enrolments, campaigns and steps at once."""

    def by_id(model: Any, ids: Iterable[int]) -> dict[int, Any]:
        """Rows of a mapped class by id."""
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
            if sent_at is not None:
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

    if campaign.status != CampaignStatus.ACTIVE:
        # Paused (or archived) since the claim: back in the queue, the claim not counted, until
        # the campaign is active again.
        message.state = MessageState.QUEUED
        message.enqueued_at = None
        message.claimed_by = None
        message.attempts = max(message.attempts - 1, 0)
        return "paused"
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
    if step.require_strengths and not (candidate.strengths or "").strip():
        # A personal follow-up without the personal part reads as a form letter: held, not
        # sent and not skipped, so it goes once the recruiter writes the note.
        message.state = MessageState.QUEUED
        message.retry_at = now + STRENGTHS_RECHECK
        message.enqueued_at = None
        message.claimed_by = None
        message.attempts = max(message.attempts - 1, 0)
        message.error = HELD_FOR_STRENGTHS
        return "deferred"
    variant = ab_variant_for(session, step, message, now)
    if variant is None:
        # In the A/B test's holdout: it goes with the winner's subject once that is decided.
        message.state = MessageState.QUEUED
        message.retry_at = abtest.hold_until(step, now)
        message.enqueued_at = None
        message.claimed_by = None
        message.attempts = max(message.attempts - 1, 0)
        message.error = HELD_FOR_AB_WINNER
        return "deferred"
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
    unsubscribe_url, preferences_url = tokens.mail_urls(candidate.id, message.id)
    if variant >= 0:
        if step.ab_winner is None:
            message.ab_variant = variant  # a mail of the sample: its figures decide the test
        compiled = sender.variant_templates.get((step.id, variant))
        if compiled is None:
            compiled = sender.variant_templates[step.id, variant] = compiled_variant(
                sender.library, step, variant
            )
    else:
        compiled = sender.step_templates.get((step.id, candidate.language))
        if compiled is None:
            compiled = compiled_for(sender.library, step, candidate.language)
            sender.step_templates[(step.id, candidate.language)] = compiled
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
        referral=(
            referral_context(
                session,
                tokens,
                candidate,
                message.id,
                message.enrolment_id,
                batch.opening(session, campaign),
            )  # fmt: skip
            if "referral" in compiled.variables
            else None
        ),
        language=compiled.language,
    )
    try:
        mail = compiled.render(context)
    except RenderError as exc:
        # Over a sandbox limit, or broken for this candidate's data: recorded, never retried.
        message.state = MessageState.FAILED
        message.error = f"template: {exc}"[:2000]
        return message.state
    # Own links (unsubscribe, preferences, rating, re-consent) go direct, never via /c/;
    # a candidate who opted out of tracking gets no pixel and their links as written.
    html = instrument(
        mail.html,
        tokens,
        message.id,
        keep=tuple(f"{tokens.base_url}/{path}/" for path in ("u", "p", "r", "k", "f/consent")),
        track_opens=tokens.open_tracking and not candidate.tracking_opt_out,
        track_clicks=not candidate.tracking_opt_out,
    )
    from_name, from_email = recruiter_of(candidate, campaign, settings, compiled.language)
    # Fixed by the row, so a resend after a crash carries the same Message-ID as the first copy.
    message.message_id = message.message_id or ledger_message_id(
        settings.message_id_key, settings.domain, message.id, message.queued_at
    )
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
    session: Session,
    sender: Sender,
    now: Callable[[], datetime],
    message_ids: Iterable[int],
    observe: Callable[[Batch, Message, str], None] | None = None,
) -> Counter[str]:
    """Claim and send a batch of messages over one SMTP connection; returns counts by outcome.

    The database may go away at any point: the claim is retried until it answers; a mail the
    relay accepted is recorded, however long that takes, before the rest of the claim is handed
    back to the queue (outcome "handed back"), so nothing is lost and nothing sent twice.

    ``observe`` hears each message's outcome once it is committed (metrics and logs).
    """
    outcome: Counter[str] = Counter()
    ids = sorted(set(message_ids))
    if not ids:
        return outcome
    sender.step_templates.clear()  # a new batch sees edited templates
    sender.variant_templates.clear()
    sender.breaker.sync()  # another worker may have paused the relay
    paused = sender.breaker.open_until(now())
    if paused is not None:
        outcome["deferred"] += patiently(
            session, lambda: _hold(session, ids, paused), "holding a batch", wait=sender.wait
        )
        return outcome
    # Rows stay loaded across the per-message commits: the batch reads each once.
    session = session() if isinstance(session, scoped_session) else session
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        batch = _claim_batch(session, sender, ids, now)
        if batch is not None:
            _send_batch(session, sender, batch, now, outcome, observe)
    finally:
        session.expire_on_commit = expire_on_commit
        session.expire_all()  # what the caller reads next comes from the database
    return outcome


def _claim_batch(
    session: Session, sender: Sender, ids: list[int], now: Callable[[], datetime]
) -> Batch | None:
    """Claim what is still queued of ``ids`` and load it, waiting out a database outage."""
    tries = 0

    def claim_and_load() -> Batch | None:
        nonlocal tries
        tries += 1
        if tries > 1 and sender.owner is not None:
            # The last try's COMMIT may have gone through unanswered: take back what it claimed.
            _unclaim(session, ids, sender.owner)
        lapses = _renew(session, sender.lease)
        claimed = claim(session, ids, now(), sender.owner)
        if not claimed:
            return None
        batch = load_batch(session, claimed, sender.timing, now())
        batch.owner, batch.lapses, batch.checked_at = sender.owner, lapses, sender.monotonic()
        return batch

    return patiently(session, claim_and_load, "claiming a batch", wait=sender.wait)


def _renew(session: Session, lease: Lease | None) -> int:
    """Beat now unless the lease is fresh; returns the lapse count (0 without a lease)."""
    if lease is None:
        return 0
    if not lease.fresh():
        lease.beat(session)
        session.commit()
    return lease.lapses


def _send_batch(
    session: Session,
    sender: Sender,
    batch: Batch,
    now: Callable[[], datetime],
    outcome: Counter[str],
    observe: Callable[[Batch, Message, str], None] | None = None,
) -> None:
    """Send the claimed batch mail by mail; give the rest back on a stop, a lapse or an outage."""
    for index, message in enumerate(batch.messages):
        if sender.stopping():
            outcome["handed back"] += _give_up(session, sender, batch, "the worker is stopping")
            return
        paused = sender.breaker.open_until(now())
        if paused is not None:
            # The relay keeps failing: the rest of the batch waits out the cooldown.
            ids = batch.ids[index:]
            outcome["deferred"] += patiently(
                session,
                functools.partial(_release, session, ids, paused, batch.owner),
                "deferring a batch",
                wait=sender.wait,
            )
            return
        try:
            state = _send_and_record(session, sender, batch, message, index, now())
        except ClaimLapsed:
            why = "the worker's heartbeat lapsed"
            outcome["handed back"] += _give_up(session, sender, batch, why)
            return
        except Exception as exc:
            # Whatever went wrong, a live worker's claim is returned by that worker or by nobody.
            reset(session)
            outage = isinstance(exc, DBAPIError) and is_outage(exc)
            why = "the database went away" if outage else f"an error ({exc!r:.200})"
            if batch.accepted is not None:
                outcome[MessageState.SENT] += 1  # recorded by _give_up, first thing
            outcome["handed back"] += _give_up(session, sender, batch, why)
            if not outage:
                raise
            return
        outcome[state] += 1
        if observe is not None:
            observe(batch, message, state)


def _give_up(session: Session, sender: Sender, batch: Batch, why: str) -> int:
    """Record the mail the relay took (if its record failed), hand the rest of the claim back.

    Retried until the database answers: a live worker's claim is never returned by the
    scheduler, so this worker must return it. Returns how many rows went back to the queue.
    """
    accepted = batch.accepted

    def record_and_release() -> int:
        if accepted is not None:
            accepted.write(session)  # first: that row leaves "sending" before the release
        released = _unclaim(session, batch.ids, batch.owner)
        session.commit()
        return released

    released = patiently(session, record_and_release, "recording and releasing a batch",
                         wait=sender.wait)  # fmt: skip
    batch.accepted = None
    log.warning(
        "%s: %d claimed messages back in the queue%s",
        why,
        released,
        f", message {accepted.message_pk} recorded as sent" if accepted else "",
    )
    return released


def _unclaim(session: Session, message_ids: list[int], owner: str | None) -> int:
    """Our claimed, unsent rows among ``message_ids`` go back to the queue, the claim uncounted.

    Only rows still in *our* claim: one the scheduler handed back and another worker claimed
    is that worker's now.
    """
    mine = Message.claimed_by.is_(None) if owner is None else Message.claimed_by == owner
    result = session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.state == MessageState.SENDING, mine)
        .values(
            state=MessageState.QUEUED,
            enqueued_at=None,
            claimed_by=None,
            attempts=Message.attempts - 1,
        )
    )
    return rows_changed(result)


def _keep_current(session: Session, sender: Sender, batch: Batch, index: int) -> None:
    """Before a mail's SMTP transaction: the lease holds, and the checks' state is recent."""
    lease = sender.lease
    if lease is not None:
        if not lease.fresh():
            lease.beat(session)
            session.commit()
        if lease.lapses != batch.lapses:
            raise ClaimLapsed
    at = sender.monotonic()
    if at - batch.checked_at >= sender.checks_max_age or index >= batch.covered:
        # The mail's own COMMIT ends this read (SQLite's snapshot starts here: fresh enough).
        batch.refresh(session, index, at)


def _send_and_record(
    session: Session,
    sender: Sender,
    batch: Batch,
    message: Message,
    index: int,
    now: datetime,
) -> str:
    """Send one message (``batch.messages[index]``) and commit its outcome; returns the outcome.

    A database outage is raised to the caller, after noting a mail the relay accepted in
    ``batch.accepted`` so that its record is written before anything else (a failure that is
    no outage leaves it there too: the batch's error path records it the same way).
    """
    message_id = message.id
    if _domain_deferred(sender, message, batch.candidates[message.candidate_id].email, now):
        session.commit()
        return "deferred"
    sender.limiter.wait_for_relay()
    _keep_current(session, sender, batch, index)
    if message_id in batch.lost:
        return "taken"  # the scheduler handed it back while our lease lapsed; not ours to send
    try:
        state = send_one(session, sender, batch, message, now)
    except Exception as exc:
        if isinstance(exc, DBAPIError) and is_outage(exc):
            raise
        # A bug or a broken template must not leave the row in "sending" forever.
        session.rollback()
        log.exception("message %s could not be sent", message_id)
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(state=MessageState.FAILED, error="internal error while rendering")
        )
        state = MessageState.FAILED
    if state != MessageState.SENT:
        session.commit()
        return state
    sender.breaker.success()
    enrolment = batch.enrolments.get(message.enrolment_id or 0)
    # Noted before the COMMIT: a failed one may leave the objects expired (no values to read).
    accepted = batch.accepted = Accepted.of(message, enrolment, batch.steps[message.step_id])
    # Record each outcome at once: a crash later in the batch must not resend this one. The
    # record is two plain UPDATEs rather than the unit of work's flush (which cost more than
    # the rest of the mail); the objects keep their values as if loaded, nothing left to flush.
    accepted.write(session)
    _settled(session, message)
    if enrolment is not None:
        _settled(session, enrolment)
    session.commit()
    batch.accepted = None
    return state


def _settled(session: Session, row: object) -> None:
    """The row's pending changes count as written (they were, by hand): no flush of them.

    What the unit of work does to a row it has just written; the row stays in the session, so
    a later expiry or refresh works as usual.
    """
    state = inspect(row)
    state._commit_all(state.dict, session.identity_map)  # noqa: SLF001


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
    return rows_changed(result)


def _release(
    session: Session, message_ids: list[int], until: datetime, owner: str | None = None
) -> int:
    """Our claimed messages go back to the queue until ``until``, their claim not counted."""
    mine = Message.claimed_by.is_(None) if owner is None else Message.claimed_by == owner
    result = session.execute(
        update(Message)
        .where(Message.id.in_(message_ids), Message.state == MessageState.SENDING, mine)
        .values(
            state=MessageState.QUEUED,
            retry_at=until,
            enqueued_at=None,
            claimed_by=None,
            attempts=Message.attempts - 1,
        )
    )
    session.commit()
    return rows_changed(result)
