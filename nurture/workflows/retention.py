"""Consent and retention: ask the quiet ones whether to stay, anonymise who does not answer."""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session

from nurture.core.audience.candidates import come_back
from nurture.core.campaigns.enrolment import enrol_all
from nurture.core.compliance import erasure
from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    Event,
    EventKind,
    ExitRule,
    Step,
)

log = logging.getLogger(__name__)

RECONSENT_CAMPAIGN = "Re-consent"
RECONSENT_TEMPLATE = "reconsent"
# Not a preference-centre topic: a question about their data, not marketing they can opt out of
# by topic (unsubscribing still stops it).
SYSTEM_TOPIC = "system"
CONSENT_BASIS = "consent"
CONSENT_SOURCE = "re-consent mail"
HUMAN_KINDS = (EventKind.OPEN, EventKind.CLICK, EventKind.REPLY, EventKind.RATING)
# Statuses that can no longer be mailed, so cannot be asked: their data just ages out.
# Sunset candidates are not mailed either (pool health): quiet for the whole period, they age out.
UNMAILABLE = (
    CandidateStatus.UNSUBSCRIBED,
    CandidateStatus.BOUNCED,
    CandidateStatus.COMPLAINED,
    CandidateStatus.SUNSET,
)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a quiet candidate is kept, and how long they have to answer the question."""

    months: int = 24
    grace_days: int = 30
    # Candidates enrolled, and erased, per pass: a pass stays short; the next one goes on.
    batch_size: int = 500

    @classmethod
    def from_config(cls, config: Any) -> RetentionPolicy:
        """``RETENTION_MONTHS`` and ``RECONSENT_GRACE_DAYS`` from the app's settings."""
        return cls(int(config["RETENTION_MONTHS"]), int(config["RECONSENT_GRACE_DAYS"]))


@dataclass(frozen=True)
class RetentionReport:
    """What one pass did (or, with ``send=False``, would do)."""

    asked: int  # enrolled in the re-consent mail
    anonymised_unanswered: int  # asked, did not confirm within the grace period
    anonymised_unmailable: int  # quiet for the whole period and no longer mailable


def months_before(when: datetime, months: int) -> datetime:
    """The same instant ``months`` calendar months earlier (the 31st becomes the month's last)."""
    index = when.year * 12 + when.month - 1 - months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def existing_reconsent_campaign(session: Session) -> Campaign | None:
    """The system campaign of the re-consent mail, if a pass has created it."""
    return session.scalar(
        select(Campaign)
        .where(Campaign.name == RECONSENT_CAMPAIGN, Campaign.topic == SYSTEM_TOPIC)
        .order_by(Campaign.id)
        .limit(1)
    )


def reconsent_campaign(session: Session, now: datetime) -> Campaign:
    """The system campaign that carries the re-consent mail, created on first use."""
    campaign = existing_reconsent_campaign(session)
    if campaign is None:
        campaign = Campaign(
            name=RECONSENT_CAMPAIGN,
            kind=CampaignKind.DRIP,
            # Created active: retention is the law, not a campaign someone must remember to start.
            status=CampaignStatus.ACTIVE,
            entry_type=EntryType.MANUAL,
            topic=SYSTEM_TOPIC,
            exit_on=[ExitRule.HIRED],
            description="Sent by the retention policy to candidates quiet for "
            "RETENTION_MONTHS: confirm to stay, or be anonymised after RECONSENT_GRACE_DAYS.",
            created_at=now,
            updated_at=now,
            steps=[Step(position=0, delay_seconds=0, delay="PT0S", template=RECONSENT_TEMPLATE)],
        )
        session.add(campaign)
        session.flush()
    return campaign


def _quiet_since(cutoff: datetime) -> ColumnElement[bool]:
    """No human engagement, update or consent since ``cutoff`` (SQL over Candidate)."""
    human = exists().where(
        Event.candidate_id == Candidate.id,
        Event.created_at >= cutoff,
        Event.machine.is_(False),
        Event.kind.in_(HUMAN_KINDS),
    )
    return and_(
        Candidate.created_at < cutoff,
        Candidate.updated_at < cutoff,
        *(
            or_(column.is_(None), column < cutoff)
            for column in (
                Candidate.consent_at,
                Candidate.last_opened_at,
                Candidate.last_clicked_at,
                Candidate.last_replied_at,
            )
        ),
        not_(human),
    )


def _to_ask(campaign: Campaign | None, cutoff: datetime):  # noqa: ANN202 - a select of ids
    """Active, quiet candidates not yet asked in this retention period (ids, oldest first)."""
    query = select(Candidate.id).where(
        Candidate.status == CandidateStatus.ACTIVE, _quiet_since(cutoff)
    )
    if campaign is not None:
        asked = exists().where(
            Enrolment.candidate_id == Candidate.id,
            Enrolment.campaign_id == campaign.id,
            Enrolment.created_at >= cutoff,
        )
        query = query.where(not_(asked))
    return query.order_by(Candidate.id)


def _unanswered(campaign: Campaign, deadline: datetime):  # noqa: ANN202 - a select of ids
    """Candidates asked (the mail sent, or found undeliverable) before ``deadline`` who did
    not confirm, update their profile, click or reply since they were asked."""
    asked = Enrolment
    since = asked.created_at
    did_not_answer = and_(
        or_(Candidate.consent_at.is_(None), Candidate.consent_at < since),
        Candidate.updated_at < since,
        or_(Candidate.last_clicked_at.is_(None), Candidate.last_clicked_at < since),
        or_(Candidate.last_replied_at.is_(None), Candidate.last_replied_at < since),
    )
    # The grace period runs from when the enrolment ended: the mail went out (completed) or
    # could not go (exited). A mail still held back (paused candidate, send window) waits.
    unanswered = exists().where(
        asked.candidate_id == Candidate.id,
        asked.campaign_id == campaign.id,
        asked.status != EnrolmentStatus.ACTIVE,
        asked.ended_at <= deadline,
        did_not_answer,
    )
    return (
        select(Candidate.id)
        .where(Candidate.status.not_in([CandidateStatus.ERASED, CandidateStatus.HIRED]), unanswered)
        .order_by(Candidate.id)
    )


def _unmailable(cutoff: datetime):  # noqa: ANN202 - a select of candidate ids
    """Quiet for the whole period and impossible to ask (unsubscribed, bounced, complained)."""
    return (
        select(Candidate.id)
        .where(Candidate.status.in_(UNMAILABLE), _quiet_since(cutoff))
        .order_by(Candidate.id)
    )


def _count(session: Session, query) -> int:  # noqa: ANN001 - a select
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def _erase(session: Session, ids: list[int], now: datetime) -> int:
    for candidate in session.scalars(select(Candidate).where(Candidate.id.in_(ids))):
        erasure.erase(session, candidate, now)
    return len(ids)


def retention_pass(
    session: Session, now: datetime, send: bool = True, policy: RetentionPolicy | None = None
) -> RetentionReport:
    """Ask quiet candidates to re-consent and anonymise those who did not answer in time.

    With ``send=False`` nothing changes: the report says what a pass would do (for the admin).
    Each kind of work is capped at ``policy.batch_size`` per pass; the caller commits.
    """
    policy = policy or RetentionPolicy()
    cutoff = months_before(now, policy.months)
    deadline = now - timedelta(days=policy.grace_days)
    if not send:
        existing = existing_reconsent_campaign(session)
        return RetentionReport(
            _count(session, _to_ask(existing, cutoff)),
            _count(session, _unanswered(existing, deadline)) if existing else 0,
            _count(session, _unmailable(cutoff)),
        )

    campaign = reconsent_campaign(session, now)
    unanswered_ids = list(session.scalars(_unanswered(campaign, deadline).limit(policy.batch_size)))
    unmailable_ids = list(session.scalars(_unmailable(cutoff).limit(policy.batch_size)))
    _erase(session, unanswered_ids + unmailable_ids, now)

    asked = 0
    if campaign.status == CampaignStatus.ACTIVE and campaign.steps:
        # Set-based: one INSERT … SELECT; the scheduler then sends like any other drip.
        entrants = _to_ask(campaign, cutoff).limit(policy.batch_size)
        first_due = now + timedelta(seconds=campaign.steps[0].delay_seconds)
        asked = enrol_all(session, campaign.id, entrants, now, first_due)
    report = RetentionReport(asked, len(unanswered_ids), len(unmailable_ids))
    if any((report.asked, report.anonymised_unanswered, report.anonymised_unmailable)):
        log.info("retention: %s", report)
    return report


def confirm_consent(candidate: Candidate, now: datetime) -> bool:
    """Record that the candidate wants to stay (basis, source, time); False if erased."""
    if candidate.status == CandidateStatus.ERASED:
        return False
    candidate.consent_basis = CONSENT_BASIS
    candidate.consent_source = CONSENT_SOURCE
    candidate.consent_at = now
    candidate.updated_at = now
    # The re-consent rule of the pool-health sunset: saying yes brings them back.
    come_back(candidate, "re-engaged", now)
    return True
