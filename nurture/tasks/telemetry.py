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

from nurture.core.delivery.smtp import DeliveryUnknown, SmtpSettings, SmtpTransport
from nurture.models import EntryType, Message, MessageState
from nurture.observability.metrics import OUTCOMES, metrics, observe_many

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
    """The SMTP transport, timing each conversation and counting failures by class.

    Times are kept in memory and written to the metrics by :meth:`flush_metrics` after each
    batch: per mail that is two clock reads and an append.
    """

    def __init__(self, settings: SmtpSettings, pipelining: bool = True) -> None:
        super().__init__(settings, pipelining)
        self.timings: list[float] = []
        self.errors: Counter[str] = Counter()

    def send(self, envelope_from: str, recipient: str, data: bytes) -> None:
        """Send as :class:`SmtpTransport` does; the time and any failure are noted."""
        started = time.perf_counter()
        try:
            super().send(envelope_from, recipient, data)
        except (smtplib.SMTPException, OSError) as exc:
            self.errors[smtp_error_class(exc)] += 1
            raise
        finally:
            self.timings.append(time.perf_counter() - started)

    def flush_metrics(self) -> None:
        """Write the times and failures noted so far to the metrics."""
        timings, self.timings = self.timings, []
        errors, self.errors = self.errors, Counter()
        observe_many(metrics().smtp_seconds, timings)
        for error_class, count in errors.items():
            metrics().smtp_errors.labels(error_class).inc(count)


class BatchRecorder:
    """Collects what one send job did, mail by mail, and reports it when the job ends.

    Per mail it only counts and notes two durations (each attribute read once); the metrics
    are written in :meth:`finish`, once per batch.
    """

    def __init__(self, job_id: str | None = None) -> None:
        self.job_id = job_id
        self.counts: Counter[tuple[str, str]] = Counter()
        self.campaigns: set[int] = set()
        self.delays: list[float] = []
        self.waits: list[float] = []
        self._first_ats_step: dict[int, bool] = {}
        self._started = time.perf_counter()

    def __call__(self, batch: Batch, message: Message, state: str) -> None:
        """One mail's outcome, as the sending service recorded it in the ledger."""
        try:
            self._record(batch, message, state)
        except Exception:  # noqa: BLE001 - counting must never fail a send
            log.debug("could not record a mail's outcome", exc_info=True)

    def _record(self, batch: Batch, message: Message, state: str) -> None:
        # The row is loaded (the batch keeps its rows across commits): read its values
        # directly, without the ORM's per-attribute instrumentation; else load them.
        values = message.__dict__
        if not _READ <= values.keys():
            values = {name: getattr(message, name) for name in _READ}
        campaign_id = values["campaign_id"]
        self.campaigns.add(campaign_id)
        if state != MessageState.SENT:
            self._not_sent(message, campaign_id, state)
            return
        self.counts[_SENT] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("mail sent", extra=_ids(message, campaign_id))
        sent_at = values["sent_at"]
        if sent_at is None:
            return
        queued_at, retry_at = values["queued_at"], values["retry_at"]
        due = retry_at if retry_at is not None and retry_at > queued_at else queued_at
        self.delays.append((sent_at - due).total_seconds())
        step_id = values["step_id"]
        first = self._first_ats_step.get(step_id)
        if first is None:
            step, campaign = batch.steps.get(step_id), batch.campaigns.get(campaign_id)
            first = self._first_ats_step[step_id] = (
                step is not None
                and step.position == 0
                and campaign is not None
                and campaign.entry_type == EntryType.ATS_EVENT
            )
        if first:
            enrolment = batch.enrolments.get(values["enrolment_id"] or 0)
            if enrolment is not None:
                self.waits.append((sent_at - enrolment.created_at).total_seconds())

    def _not_sent(self, message: Message, campaign_id: int, state: str) -> None:
        outcome, reason = outcome_of(state), reason_of(state, message.error)
        self.counts[outcome, reason] += 1
        level = logging.DEBUG if outcome == "deferred" else logging.INFO
        if log.isEnabledFor(level):
            extra = _ids(message, campaign_id)
            extra |= {"outcome": outcome, "reason": reason, "attempt": message.attempts}
            log.log(level, f"mail {outcome}", extra=extra)

    def finish(self, outcome: Counter[str], ids: list[int]) -> None:
        """Write the job's counts to the metrics and log one line about the batch."""
        seconds = time.perf_counter() - self._started
        held = outcome.get("deferred", 0) - sum(
            n for (kind, _), n in self.counts.items() if kind == "deferred"
        )
        if held > 0:
            # Held back without being tried: the circuit breaker has the relay paused.
            self.counts["deferred", "breaker"] += held
        recorded = metrics()
        for (kind, reason), count in self.counts.items():
            recorded.mails.labels(kind, reason).inc(count)
        observe_many(recorded.mail_delay, (max(delay, 0.0) for delay in self.delays))
        observe_many(recorded.rejection_to_first_mail, (max(w, 0.0) for w in self.waits))
        recorded.send_batch_seconds.observe(seconds)
        totals: Counter[str] = Counter()
        for (kind, _), count in self.counts.items():
            totals[kind] += count
        summary = {kind: totals.get(kind, 0) for kind in OUTCOMES}
        log.info(
            "send batch done",
            extra={
                "job_id": self.job_id,
                "message_ids": ids,
                "campaign_ids": sorted(self.campaigns),
                "duration_ms": round(seconds * 1000, 1),
                **summary,
            },
        )


_SENT = ("sent", "accepted")
# The message's columns a sent mail's accounting reads.
_READ = frozenset({"campaign_id", "sent_at", "queued_at", "retry_at", "step_id", "enrolment_id"})


def _ids(message: Message, campaign_id: int) -> dict[str, int]:
    """The ids a line about one mail carries (never the address: the ids lead to it)."""
    return {
        "message_id": message.id,
        "campaign_id": campaign_id,
        "candidate_id": message.candidate_id,
    }


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
    recovered = getattr(result, "recovered", 0)
    _remember(redis, PassRecord(now(), seconds, True, created=created, enqueued=enqueued))
    if created or enqueued or recovered:
        took = round(seconds * 1e3, 1)
        extra = {"new_messages": created, "enqueued": enqueued, "duration_ms": took}
        if recovered:
            extra["recovered_from_dead_workers"] = recovered
        scheduler_log.info("scheduler pass", extra=extra)
    return result


def _remember(redis: Redis, record: PassRecord) -> None:
    record = PassRecord(**(record.__dict__ | {"host": socket.gethostname(), "pid": os.getpid()}))
    try:
        redis.set(LAST_PASS_KEY, record.dump())
    except RedisError as exc:
        scheduler_log.debug("last pass not recorded: %s", exc)
