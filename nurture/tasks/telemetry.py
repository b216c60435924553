"""What workers and the scheduler tell operators: metrics and log lines about each mail and pass.

Kept out of the sending service: the service hands each outcome to a :class:`BatchRecorder`,
which counts it in memory and writes the metrics and one summary line when the job ends. Per
mail that is a few dictionary operations; a sent mail's own line is DEBUG, because at full speed
one line per mail would be most of the log (and journald's default rate limit drops lines past
about 330 a second). The ledger keeps every mail's story; the log keeps what went wrong.
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import RedisError

from nurture.core.delivery.smtp import DeliveryUnknown, SmtpTransport
from nurture.models import EntryType, Message, MessageState
from nurture.observability.metrics import metrics

if TYPE_CHECKING:
    from nurture.core.delivery.sending import Batch

log = logging.getLogger("nurture.sending")
scheduler_log = logging.getLogger("nurture.scheduler")

LAST_PASS_KEY = "nurture:scheduler:last_pass"

# The reasons a label may take, so a new error text cannot grow the metric without bound.
SKIP_REASONS = {
    "unsubscribed",
    "bounced",
    "complained",
    "hired",
    "erased",
    "suppressed",
    "topic_off",
    "condition_not_met",
    "enrolment_exited",
    "enrolment_completed",
}
FAIL_PREFIXES = (
    ("hard bounce", "hard_bounce"),
    ("gave up", "gave_up"),
    ("refused", "refused"),
    ("internal error", "internal_error"),
)
_CODE = re.compile(r":\s*([245])\d\d\b")


def outcome_of(state: str) -> str:
    """The metric's outcome for a state a send left a mail in (queued again means a retry)."""
    return "retry" if state == MessageState.QUEUED else state


def reason_of(state: str, error: str) -> str:
    """A short, bounded reason for a mail's outcome, from the ledger's error text."""
    error = (error or "").strip().lower()
    if state == MessageState.SENT:
        return "accepted"
    if state == MessageState.SKIPPED:
        if error.startswith("condition"):
            return "condition_not_met"
        reason = re.sub(r"[^a-z]+", "_", error).strip("_")
        return reason if reason in SKIP_REASONS else "other"
    if state == MessageState.FAILED:
        return next((label for prefix, label in FAIL_PREFIXES if error.startswith(prefix)), "other")
    if state == MessageState.QUEUED:
        if "delivery unknown" in error:
            return "no_reply"
        code = _CODE.search(error)
        return f"{code.group(1)}xx" if code else "connection"
    return "schedule"  # deferred: a send window, the frequency cap, a domain's rate


def smtp_error_class(exc: BaseException) -> str:
    """The class an SMTP failure belongs to, for ``nurture_smtp_errors_total``."""
    if isinstance(exc, DeliveryUnknown):
        return "no_reply"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "auth"
    code = None
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = next(iter(exc.recipients.values()), (0, b""))[0]
    elif isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
    if code:
        return "5xx" if code >= 500 else "4xx" if code >= 400 else "protocol"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    return "connection"


class InstrumentedTransport(SmtpTransport):
    """The SMTP transport, timing each conversation and counting failures by class."""

    def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        """Send as :class:`SmtpTransport` does; the time and any failure go to the metrics."""
        started = time.perf_counter()
        try:
            super().send(envelope_from, recipient, data)
        except (smtplib.SMTPException, OSError) as exc:
            metrics().smtp_errors.labels(smtp_error_class(exc)).inc()
            raise
        finally:
            metrics().smtp_seconds.observe(time.perf_counter() - started)


class BatchRecorder:
    """Collects what one send job did, mail by mail, and reports it when the job ends."""

    def __init__(self, job_id: str | None = None) -> None:
        self.job_id = job_id
        self.counts: Counter[tuple[str, str]] = Counter()
        self.campaigns: set[int] = set()
        self.seen = 0
        self._started = time.perf_counter()

    def __call__(self, batch: Batch, message: Message, state: str) -> None:
        """One mail's outcome, as the sending service recorded it in the ledger."""
        try:
            self._record(batch, message, state)
        except Exception:  # noqa: BLE001 - counting must never fail a send
            log.debug("could not record a mail's outcome", exc_info=True)

    def _record(self, batch: Batch, message: Message, state: str) -> None:
        self.seen += 1
        self.campaigns.add(message.campaign_id)
        outcome, reason = outcome_of(state), reason_of(state, message.error)
        self.counts[outcome, reason] += 1
        ids = {
            "message_id": message.id,
            "campaign_id": message.campaign_id,
            "candidate_id": message.candidate_id,
        }
        if state != MessageState.SENT:
            level = logging.DEBUG if outcome == "deferred" else logging.INFO
            if log.isEnabledFor(level):
                extra = ids | {"outcome": outcome, "reason": reason, "attempt": message.attempts}
                log.log(level, f"mail {outcome}", extra=extra)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("mail sent", extra=ids)
        if message.sent_at is None:
            return
        due = max(message.queued_at, message.retry_at or message.queued_at)
        metrics().mail_delay.observe(max((message.sent_at - due).total_seconds(), 0.0))
        step = batch.steps.get(message.step_id)
        campaign = batch.campaigns.get(message.campaign_id)
        enrolment = batch.enrolments.get(message.enrolment_id) if message.enrolment_id else None
        if (
            step is not None
            and step.position == 0
            and campaign is not None
            and campaign.entry_type == EntryType.ATS_EVENT
            and enrolment is not None
        ):
            waited = (message.sent_at - enrolment.created_at).total_seconds()
            metrics().rejection_to_first_mail.observe(max(waited, 0.0))

    def finish(self, outcome: Counter[str], ids: list[int]) -> None:
        """Write the job's counts to the metrics and log one line about the batch."""
        seconds = time.perf_counter() - self._started
        held = outcome.get("deferred", 0) - sum(
            n for (kind, _), n in self.counts.items() if kind == "deferred"
        )
        if held > 0:
            # Held back without being tried: the circuit breaker has the relay paused.
            self.counts["deferred", "breaker"] += held
        mails = metrics().mails
        for (kind, reason), count in self.counts.items():
            mails.labels(kind, reason).inc(count)
        metrics().send_batch_seconds.observe(seconds)
        totals = Counter()
        for (kind, _), count in self.counts.items():
            totals[kind] += count
        log.info(
            "send batch done",
            extra={
                "job_id": self.job_id,
                "message_ids": ids,
                "campaign_ids": sorted(self.campaigns),
                "duration_ms": round(seconds * 1000, 1),
                **{kind: totals.get(kind, 0) for kind in ("sent", "failed", "skipped", "retry")},
                "deferred": totals.get("deferred", 0),
            },
        )


@dataclass(frozen=True)
class PassRecord:
    """The last scheduler pass, as the System page and /metrics read it."""

    at: datetime
    seconds: float
    ok: bool
    created: int = 0
    enqueued: int = 0
    error: str = ""
    host: str = ""
    pid: int = 0

    def dump(self) -> str:
        """The record as JSON, for its Redis key."""
        return json.dumps(self.__dict__ | {"at": self.at.isoformat()})

    @classmethod
    def load(cls, raw: bytes | str | None) -> PassRecord | None:
        """A record read back, or None when there is none (or it is unreadable)."""
        if not raw:
            return None
        try:
            data: dict[str, Any] = json.loads(raw)
            data["at"] = datetime.fromisoformat(data["at"])
            return cls(**data)
        except (ValueError, KeyError, TypeError):
            return None


def timed_pass(redis: Redis, now: Callable[[], datetime], run: Callable[[], Any]) -> Any:
    """Run one scheduler pass, timing it; the outcome goes to the metrics, the log and Redis."""
    started = time.perf_counter()
    try:
        result = run()
    except Exception as exc:
        seconds = time.perf_counter() - started
        metrics().scheduler_failures.inc()
        metrics().scheduler_pass_seconds.observe(seconds)
        _remember(redis, PassRecord(now(), seconds, False, error=type(exc).__name__))
        raise
    seconds = time.perf_counter() - started
    metrics().scheduler_pass_seconds.observe(seconds)
    created, enqueued = getattr(result, "created", 0), getattr(result, "enqueued", 0)
    _remember(redis, PassRecord(now(), seconds, True, created=created, enqueued=enqueued))
    if created or enqueued:
        took = round(seconds * 1e3, 1)
        extra = {"new_messages": created, "enqueued": enqueued, "duration_ms": took}
        scheduler_log.info("scheduler pass", extra=extra)
    return result


def _remember(redis: Redis, record: PassRecord) -> None:
    record = PassRecord(**(record.__dict__ | {"host": socket.gethostname(), "pid": os.getpid()}))
    try:
        redis.set(LAST_PASS_KEY, record.dump())
    except RedisError as exc:
        scheduler_log.debug("last pass not recorded: %s", exc)
