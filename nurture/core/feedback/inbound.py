"""Inbound mail: tell replies, auto-replies, bounces and complaints apart, and act on each."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message as MailMessage
from email.utils import parseaddr

from flufl.bounce import all_failures
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core import addresses, settings
from nurture.core.audience import candidates as candidate_service
from nurture.core.compliance import suppressions
from nurture.core.feedback import replies
from nurture.models import Candidate, CandidateStatus, Event, EventKind, ExitRule, Message

REPLY = "reply"
AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"
COMPLAINT = "complaint"
OTHER = "other"

MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"(?<![\d.])([45])\d\d(?![\d.])")
# Header lines that a bounce's quoted copy of the original mail carries.
_QUOTED_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+@[^<>\s]+>)", re.I | re.M)
# Enhanced status codes that are "permanent" on paper but say nothing about the mailbox
# itself (full mailbox, message too big, a policy or content block): counted as soft, so
# only repeated ones suppress the address.
_SOFT_PERMANENT = ("5.2.2", "5.3.4", "5.7.")
# ARF feedback types that are a person or provider complaining about the mail.
_COMPLAINT_TYPES = {"abuse", "fraud", "other"}
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|absence)\b",
    re.I,
)


@dataclass(frozen=True)
class Failure:
    """One recipient a delivery report says could not be reached."""

    email: str
    hard: bool
    status: str = ""
    diagnostic: str = ""


@dataclass
class Inbound:
    """What an inbound mail is, and the facts needed to act on it."""

    kind: str
    message_id: str = ""
    subject: str = ""
    sender: str = ""
    # Message-IDs of our mail this one answers or reports on, most specific first.
    refs: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Complaints: the address that complained, when the report names it.
    complainant: str = ""
    feedback_type: str = ""
    # A person's reply as received: kept for the team's inbox and attached to its forward.
    raw: bytes = b""


@dataclass
class Outcome:
    """What applying an inbound mail did."""

    kind: str
    matched: bool = False
    duplicate: bool = False
    candidates: list[int] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    detail: str = ""


def _text(value: object) -> str:
    """A header as readable text, RFC 2047 words decoded, on one line."""
    if value is None:
        return ""
    try:
        decoded = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        decoded = str(value)
    return " ".join(decoded.split())


def _ids(value: object) -> list[str]:
    return MESSAGE_ID.findall(str(value or ""))


def _address(value: str) -> str:
    return parseaddr(value)[1].strip().lower()


def parse(raw: bytes) -> MailMessage:
    """Parse raw bytes the way flufl.bounce expects (the compat32 policy)."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def classify(raw: bytes) -> Inbound:
    """What an inbound mail is: a complaint, a bounce, an auto-reply, a reply, or other."""
    msg = parse(raw)
    found = Inbound(
        kind=OTHER,
        message_id=(_ids(msg.get("Message-ID")) or [""])[0],
        subject=_text(msg.get("Subject")),
        sender=_address(_text(msg.get("From"))),
    )
    report_type = str(msg.get_param("report-type", header="content-type") or "").lower()
    if msg.get_content_type() == "multipart/report" and report_type == "feedback-report":
        _read_feedback_report(msg, found)
        return found
    failures = _delivery_failures(msg)
    if failures:
        found.kind = BOUNCE
        found.failures = failures
        found.refs = _original_ids(msg)
        return found
    replied_to = _ids(msg.get("In-Reply-To"))
    # References run oldest first; the newest is the mail being answered.
    references = list(reversed(_ids(msg.get("References"))))
    found.refs = list(dict.fromkeys(replied_to + references))
    if _is_automatic(msg, found.subject):
        found.kind = AUTO_REPLY if found.refs else OTHER
    elif found.refs:
        found.kind = REPLY
        found.raw = raw
    return found


def _is_automatic(msg: MailMessage, subject: str) -> bool:
    """True for out-of-office and other robot answers (RFC 3834 and the common ad-hoc marks)."""
    auto_submitted = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if any(msg.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    if (msg.get("Precedence") or "").strip().lower() in ("auto_reply", "bulk", "junk", "list"):
        return True
    if (msg.get("X-Auto-Response-Suppress") or "").strip():
        return True  # Exchange marks its out-of-office answers this way
    return bool(_AUTO_SUBJECT.match(subject))


def _read_feedback_report(msg: MailMessage, found: Inbound) -> None:
    """Fill in a complaint from an ARF report (RFC 5965)."""
    found.kind = COMPLAINT
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = _report_fields(part)
        if not fields:
            continue
        report = fields[0]
        found.feedback_type = (report.get("Feedback-Type") or "").strip().lower()
        for name in ("Original-Rcpt-To", "Removal-Recipient"):
            address = _address(report.get(name) or "")
            if "@" in address:
                found.complainant = address
                break
        break
    if found.feedback_type and found.feedback_type not in _COMPLAINT_TYPES:
        found.kind = OTHER  # e.g. "not-spam" or an authentication-failure report
    found.refs = _original_ids(msg)
    if not found.complainant:
        original = _original_headers(msg)
        if original is not None:
            address = _address(_text(original.get("To")))
            # Providers that redact the recipient leave a placeholder such as "redacted@aol.com".
            if "@" in address and "redacted" not in address:
                found.complainant = address


def _report_fields(part: MailMessage) -> list[MailMessage]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, MailMessage)]
    # Some MTAs mark the part as text; its blocks are still header blocks split by blank lines.
    text = payload if isinstance(payload, str) else ""
    return [
        email.message_from_string(block.strip() + "\n", policy=email.policy.compat32)
        for block in re.split(r"\r?\n\s*\r?\n", text)
        if block.strip()
    ]


def _classify_status(action: str, status: str) -> bool | None:
    """True for a hard failure, False for a soft one, None for a success (delivered, relayed)."""
    action = action.strip().lower()
    if action.startswith(("delivered", "relayed", "expanded")):
        return None
    if action.startswith("delayed") or status.startswith("4."):
        return False
    if status.startswith(_SOFT_PERMANENT):
        return False
    return action.startswith(("failed", "fail", "error")) or status.startswith("5.")


def _delivery_failures(msg: MailMessage) -> list[Failure]:
    """The recipients a bounce reports, hard or soft: the DSN fields, then flufl.bounce."""
    failures = _dsn_failures(msg)
    for failure in _heuristic_failures(msg):
        failures.setdefault(failure.email, failure)  # the DSN's fields know better
    return list(failures.values())


def _dsn_failures(msg: MailMessage) -> dict[str, Failure]:
    """The failed recipients of the message/delivery-status parts (RFC 3464), by address."""
    failures: dict[str, Failure] = {}
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _report_fields(part)[1:]:  # the first block is about the whole message
            failure = _dsn_failure(block)
            if failure is not None:
                failures[failure.email] = failure
    return failures


def _dsn_failure(block: MailMessage) -> Failure | None:
    """One recipient's fields of a DSN as a failure; None for a success or no address."""
    recipient = block.get("Final-Recipient") or block.get("Original-Recipient") or ""
    address = _address(recipient.partition(";")[2] or recipient)
    status_match = _STATUS.search(block.get("Status") or "")
    status = status_match.group(0) if status_match else ""
    hard = _classify_status(block.get("Action") or "", status)
    if hard is None or "@" not in address:
        return None
    diagnostic = _text(block.get("Diagnostic-Code"))
    diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
    return Failure(address, hard, status, diagnostic[:400])


def _heuristic_failures(msg: MailMessage) -> list[Failure]:
    """What flufl.bounce's heuristics find in non-DSN bounces (Exim, qmail, Yahoo), with the
    status and words the text gives near each address."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a heuristic that trips on odd mail must not stop the pass
        return []
    text = _body_text(msg)
    failures: list[Failure] = []
    for raw_address, hard in [(a, False) for a in temporary] + [(a, True) for a in permanent]:
        address = raw_address.decode("ascii", "replace").strip().lower()
        if "@" not in address:
            continue
        status, diagnostic = _diagnostic_near(text, address)
        if hard and status.startswith(("4.", *_SOFT_PERMANENT)):
            hard = False  # the text says it is a deferral or a full mailbox
        failures.append(Failure(address, hard, status, diagnostic))
    return failures


def _body_text(msg: MailMessage) -> str:
    """The human-readable text of a bounce, for non-DSN formats (Exim, qmail, Yahoo)."""
    chunks: list[str] = []
    for part in msg.walk():
        if part.get_content_type() != "text/plain":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            chunks.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks)


def _diagnostic_near(text: str, address: str) -> tuple[str, str]:
    """The status code and the server's words that follow an address in a bounce's text."""
    index = text.lower().find(address)
    if index < 0:
        return "", ""
    window = text[index : index + 600]
    window = window.split("\n\n------")[0].split("\n------")[0]
    lines = [line.strip() for line in window.splitlines()[1:] if line.strip()]
    diagnostic = " ".join(lines)[:400]
    match = _STATUS.search(window)
    if match:
        return match.group(0), diagnostic
    code = _SMTP_CODE.search(window)
    return (f"{code.group(1)}.0.0" if code else ""), diagnostic


def _original_headers(msg: MailMessage) -> MailMessage | None:
    """The returned mail's headers: a message/rfc822 or text/rfc822-headers part."""
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], MailMessage):
                return payload[0]
        if content_type == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                return parse(body.lstrip())
    return None


def _original_ids(msg: MailMessage) -> list[str]:
    """Message-IDs of the mail a report is about, from the attached copy or the quoted text."""
    ids: list[str] = []
    original = _original_headers(msg)
    if original is not None:
        ids += _ids(original.get("Message-ID"))
    ids += _QUOTED_MESSAGE_ID.findall(_body_text(msg))
    # Some MTAs also thread the report under the mail it is about.
    ids += _ids(msg.get("In-Reply-To")) + _ids(msg.get("References"))
    own = _ids(msg.get("Message-ID"))
    return [i for i in dict.fromkeys(ids) if i not in own]


# --- applying ---------------------------------------------------------------------------------


def apply(session: Session, inbound: Inbound, now: datetime, soft_limit: int = 3) -> Outcome:
    """Record what an inbound mail says, once: events, statuses, suppressions, ended drips."""
    if inbound.kind not in (REPLY, AUTO_REPLY, BOUNCE, COMPLAINT):
        return Outcome(inbound.kind)
    messages = our_messages(session, inbound.refs)
    source = f"mid:{inbound.message_id.strip('<>')}" if inbound.message_id else ""
    if source and _seen_before(session, source, messages):
        return Outcome(inbound.kind, matched=True, duplicate=True)
    if inbound.kind in (REPLY, AUTO_REPLY):
        return _apply_reply(session, inbound, now, source, messages)
    if inbound.kind == BOUNCE:
        outcome = Outcome(BOUNCE)
        for failure in inbound.failures:
            record_bounce(
                session, failure, now, soft_limit, messages=messages, source=source,
                outcome=outcome,
            )  # fmt: skip
        return outcome
    message = messages[0] if messages else None
    address = inbound.complainant or (message.to_address if message else "")
    return record_complaint(session, address, now, message=message, source=source)


def _seen_before(session: Session, source: str, messages: list[Message]) -> bool:
    """Whether an event already came from this mail (looked up through an index, not a scan)."""
    query = select(Event.id).where(Event.url == source)
    if messages:
        query = query.where(Event.candidate_id.in_({m.candidate_id for m in messages}))
    else:
        query = query.where(
            Event.kind.in_([EventKind.REPLY, EventKind.BOUNCE, EventKind.COMPLAINT])
        )
    return session.scalar(query.limit(1)) is not None


def our_messages(session: Session, ids: Iterable[str]) -> list[Message]:
    """Our ledger rows with these Message-IDs, in the order the IDs were given."""
    ids = [i for i in ids if i]
    if not ids:
        return []
    found = session.scalars(select(Message).where(Message.message_id.in_(ids)))
    rows = {message.message_id: message for message in found}
    return [rows[i] for i in ids if i in rows]


def _event(
    session: Session,
    kind: EventKind,
    candidate_id: int,
    message: Message | None,
    now: datetime,
    value: str = "",
    source: str = "",
    machine: bool = False,
) -> Event:
    event = Event(
        message_id=message.id if message else None,
        candidate_id=candidate_id,
        kind=kind,
        value=value[:400],
        # RFC 2392 mid: URL of the mail that told us, so reading it again records nothing.
        url=source,
        machine=machine,
        created_at=now,
    )
    session.add(event)
    return event


def _apply_reply(
    session: Session, inbound: Inbound, now: datetime, source: str, messages: list[Message]
) -> Outcome:
    """A reply ends the drips that exit on one (a recruiter takes over); an auto-reply is noted."""
    if not messages:
        return Outcome(inbound.kind, detail="answers no mail of ours")
    message = messages[0]
    candidate = session.get(Candidate, message.candidate_id)
    if candidate is None:
        return Outcome(inbound.kind, detail="candidate gone")
    automatic = inbound.kind == AUTO_REPLY
    event = _event(
        session, EventKind.REPLY, candidate.id, message, now, value=inbound.subject,
        source=source, machine=automatic,
    )  # fmt: skip
    outcome = Outcome(inbound.kind, matched=True, candidates=[candidate.id])
    if automatic:
        return outcome
    session.flush()
    replies.record_reply(
        session, candidate, message, event, inbound.raw, inbound.message_id, inbound.subject,
        now, team_address=settings.current().get("REPLY_TEAM_ADDRESS"),
    )  # fmt: skip
    candidate.last_replied_at = now
    candidate.updated_at = now
    ended = candidate_service.end_enrolments(
        session, candidate, ExitRule.REPLIED, now, by_rule=True
    )
    outcome.detail = f"{ended} enrolment(s) ended"
    return outcome


def _candidate_for(
    session: Session, address: str, messages: list[Message]
) -> tuple[Candidate | None, Message | None]:
    """The candidate a report is about (by our message, else by address) and that message."""
    for message in messages:
        if not address or message.to_address.lower() == address:
            return session.get(Candidate, message.candidate_id), message
    if len(messages) == 1 and not messages[0].to_address:
        # An erased candidate's ledger row has lost its address but still names them.
        return session.get(Candidate, messages[0].candidate_id), messages[0]
    if address:
        candidate = session.scalar(select(Candidate).where(Candidate.email == address))
        return candidate, None
    return None, None


def _stop_mailing(
    session: Session, candidate: Candidate | None, address: str, reason: str, now: datetime
) -> None:
    """Suppress the address and end every drip; the status says why (unless erased)."""
    if candidate is not None and candidate.status != CandidateStatus.ERASED:
        # A complaint outranks an earlier unsubscribe or bounce; a bounce only ends "active".
        if reason == "complained" or candidate.status in (
            CandidateStatus.ACTIVE,
            CandidateStatus.HIRED,
        ):
            candidate.status = addresses.SUPPRESSED_STATUS[reason]
            candidate.updated_at = now
        candidate_service.end_enrolments(session, candidate, reason, now)
        suppressions.suppress(session, candidate.email, reason, now)
    if address and "@" in address:
        suppressions.suppress(session, address, reason, now)


def record_bounce(
    session: Session,
    failure: Failure,
    now: datetime,
    soft_limit: int = 3,
    *,
    messages: list[Message] | None = None,
    source: str = "",
    outcome: Outcome | None = None,
) -> Outcome:
    """A hard bounce suppresses at once; soft ones are counted and suppress at ``soft_limit``."""
    outcome = outcome or Outcome(BOUNCE)
    address = failure.email.strip().lower()
    candidate, message = _candidate_for(session, address, messages or [])
    if candidate is None:
        if failure.hard and address:
            _stop_mailing(session, None, address, "bounced", now)
            outcome.suppressed.append(address)
        return outcome
    outcome.matched = outcome.matched or message is not None
    outcome.candidates.append(candidate.id)
    if message is not None and _already(session, message, EventKind.BOUNCE, failure.hard):
        outcome.duplicate = True  # the same mail reported twice (a retried webhook, say)
        return outcome
    hard = failure.hard
    detail = " ".join(part for part in (failure.status, failure.diagnostic) if part)
    if not hard:
        hard, detail = _count_soft_bounce(candidate, soft_limit, detail, now)
    _note_bounce(session, candidate, message, hard, detail, now, source)
    if hard:
        _stop_mailing(session, candidate, address or candidate.email, "bounced", now)
        outcome.suppressed.append(candidate.email)
    outcome.detail = detail
    return outcome


def _note_bounce(
    session: Session,
    candidate: Candidate,
    message: Message | None,
    hard: bool,
    detail: str,
    now: datetime,
    source: str,
) -> None:
    """The bounce event on the candidate's timeline, and why on the message it was about."""
    kind = "hard" if hard else "soft"
    _event(session, EventKind.BOUNCE, candidate.id, message, now, kind, source)
    if message is not None and detail:
        # Shown in the timeline with the message: why it bounced.
        message.error = f"bounced ({kind}): {detail}"[:2000]


def _count_soft_bounce(
    candidate: Candidate, soft_limit: int, detail: str, now: datetime
) -> tuple[bool, str]:
    """Count a soft bounce; the ``soft_limit``-th makes it a hard one. (hard, detail)."""
    candidate.soft_bounces = (candidate.soft_bounces or 0) + 1
    candidate.updated_at = now
    if candidate.soft_bounces < soft_limit:
        return False, detail
    return True, f"soft bounce {candidate.soft_bounces} of {soft_limit}: {detail}".rstrip(": ")


def _already(session: Session, message: Message, kind: EventKind, hard: bool | None) -> bool:
    query = select(Event.id).where(Event.message_id == message.id, Event.kind == kind)
    if hard is not None:
        query = query.where(Event.value == ("hard" if hard else "soft"))
    return session.scalar(query.limit(1)) is not None


def record_complaint(
    session: Session,
    address: str,
    now: datetime,
    *,
    message: Message | None = None,
    source: str = "",
) -> Outcome:
    """A complaint (an ARF report or a provider's webhook): suppress, end drips, note it."""
    address = (address or "").strip().lower()
    candidate, message = _candidate_for(session, address, [message] if message else [])
    outcome = Outcome(COMPLAINT, matched=message is not None)
    if candidate is None:
        if address:
            _stop_mailing(session, None, address, "complained", now)
            outcome.suppressed.append(address)
        return outcome
    outcome.candidates.append(candidate.id)
    duplicate = (
        _already(session, message, EventKind.COMPLAINT, None)
        if message is not None
        else candidate.status == CandidateStatus.COMPLAINED
    )
    if not duplicate:
        _event(session, EventKind.COMPLAINT, candidate.id, message, now, "abuse", source)
    outcome.duplicate = duplicate
    _stop_mailing(session, candidate, address, "complained", now)
    outcome.suppressed.append(candidate.email)
    return outcome
