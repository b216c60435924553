"""Talent-pool health: a re-engagement drip for candidates going cold, a sunset policy for those
who stay silent, the rule that brings them back, and the daily count of the pool's shares.

What Gmail's and Yahoo's bulk-sender guidance asks of a sender: stop mailing people who never
engage. A candidate is **cold** after ``cold_after_days`` without a human open, click, reply,
consent or new application (machine opens never count: they are not in the summary columns);
cold candidates get the re-engagement drip once per cold spell. After ``sunset_after_months``
without any of those they are **sunset**: status ``sunset`` with the reason, so no campaign
mails them any more (every send-time check wants ``active``). They come back by saying so
(the re-engagement mail's button, or "stay" on the preference page: a consent) or by a new
application from the ATS.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session

from nurture.core.audience.candidates import end_enrolments
from nurture.core.campaigns.enrolment import enrol_all
from nurture.core.errors import ValidationError
from nurture.models import (
    AtsEvent,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    ExitRule,
    PoolSnapshot,
    Step,
    StepCondition,
    TeamSetting,
    Topic,
    User,
)
from nurture.workflows.retention import months_before

log = logging.getLogger(__name__)

POLICY_KEY = "pool_health"
REENGAGE_CAMPAIGN = "Re-engagement"
REENGAGE_TEMPLATE = "reengage"
# The drip's second mail, to those who did not open the first: a last call before the sunset.
LAST_CALL_SUBJECT = "Last call: shall we keep writing to you, {{ candidate.first_name }}?"
LAST_CALL_DELAY = timedelta(days=14)
COLD_RANGE = (7, 365)
SUNSET_RANGE = (1, 36)
BATCH = 1000


@dataclass(frozen=True)
class PoolPolicy:
    """When a candidate is cold, and when they are sunset."""

    cold_after_days: int = 60
    sunset_after_months: int = 6

    def as_dict(self) -> dict[str, int]:
        """The API's shape."""
        return asdict(self)


def policy(session: Session, config: Any) -> PoolPolicy:
    """The team's policy (set in the admin), else NURTURE_COLD_AFTER_DAYS and
    NURTURE_SUNSET_AFTER_MONTHS."""
    row = session.get(TeamSetting, POLICY_KEY)
    value = row.value if row is not None else {}
    return PoolPolicy(
        int(value.get("cold_after_days", config["COLD_AFTER_DAYS"])),
        int(value.get("sunset_after_months", config["SUNSET_AFTER_MONTHS"])),
    )


def _whole(value: Any, name: str, low: int, high: int, unit: str) -> int:
    text = str(value if value is not None else "").strip()
    if isinstance(value, bool) or not text.isdigit():
        raise ValidationError("not a whole number", {name: f"give a whole number of {unit}"})
    number = int(text[:6])
    if not low <= number <= high:
        raise ValidationError("out of range", {name: f"must be between {low} and {high} {unit}"})
    return number


def set_policy(
    session: Session,
    cold_after_days: Any,
    sunset_after_months: Any,
    user: User | None,
    now: datetime,
) -> PoolPolicy:
    """Save the team's policy; every bad field is named and nothing is saved."""
    problems: dict[str, str] = {}
    values: dict[str, int] = {}
    for name, value, (low, high), unit in (
        ("cold_after_days", cold_after_days, COLD_RANGE, "days"),
        ("sunset_after_months", sunset_after_months, SUNSET_RANGE, "months"),
    ):
        try:
            values[name] = _whole(value, name, low, high, unit)
        except ValidationError as exc:
            problems.update(exc.fields)
    if not problems and values["sunset_after_months"] * 30 <= values["cold_after_days"]:
        problems["sunset_after_months"] = (
            "must be longer than the cold period, so that cold candidates get the "
            "re-engagement mail before they are sunset"
        )
    if problems:
        raise ValidationError("the policy is not valid", problems)
    row = session.get(TeamSetting, POLICY_KEY)
    if row is None:
        row = TeamSetting(key=POLICY_KEY, value={}, updated_at=now)
        session.add(row)
    row.value = values
    row.updated_at = now
    row.updated_by_id = user.id if user is not None else None
    return PoolPolicy(**values)


# --- who is quiet --------------------------------------------------------------------------


def quiet_since(cutoff: datetime) -> ColumnElement[bool]:
    """No human open, click, reply, consent or application since ``cutoff`` (SQL, Candidate).

    The summary columns hold human engagement only (machine opens and scanner clicks are left
    out when they are written), so this needs no scan of the events.
    """
    applied = exists().where(AtsEvent.candidate_id == Candidate.id, AtsEvent.received_at >= cutoff)
    return and_(
        Candidate.created_at < cutoff,
        *(
            or_(column.is_(None), column < cutoff)
            for column in (
                Candidate.last_opened_at,
                Candidate.last_clicked_at,
                Candidate.last_replied_at,
                Candidate.consent_at,
            )
        ),
        not_(applied),
    )


def _cold_cutoff(now: datetime, rules: PoolPolicy) -> datetime:
    return now - timedelta(days=rules.cold_after_days)


# --- the re-engagement drip ----------------------------------------------------------------


def existing_reengage_campaign(session: Session) -> Campaign | None:
    """The system drip that asks cold candidates whether to keep writing, once created."""
    return session.scalar(
        select(Campaign).where(Campaign.name == REENGAGE_CAMPAIGN).order_by(Campaign.id).limit(1)
    )


def reengage_campaign(session: Session, now: datetime) -> Campaign:
    """The re-engagement drip, created (active) on first use; the team may pause or edit it."""
    campaign = existing_reengage_campaign(session)
    if campaign is None:
        campaign = Campaign(
            name=REENGAGE_CAMPAIGN,
            kind=CampaignKind.DRIP,
            status=CampaignStatus.ACTIVE,
            entry_type=EntryType.MANUAL,
            topic=Topic.CHECKINS,
            exit_on=[ExitRule.HIRED, ExitRule.REAPPLIED, ExitRule.REPLIED],
            description="Sent by the pool-health policy to candidates with no human open for "
            "the cold period; those who stay silent are sunset after the sunset period.",
            created_at=now,
            updated_at=now,
            steps=[
                Step(position=0, delay_seconds=0, delay="PT0S", template=REENGAGE_TEMPLATE),
                Step(
                    position=1,
                    delay_seconds=int(LAST_CALL_DELAY.total_seconds()),
                    delay="P14D",
                    template=REENGAGE_TEMPLATE,
                    subject=LAST_CALL_SUBJECT,
                    condition=StepCondition.PREVIOUS_NOT_OPENED,
                ),
            ],
        )
        session.add(campaign)
        session.flush()
    return campaign


def _cold_to_ask(campaign: Campaign | None, now: datetime, rules: PoolPolicy):  # noqa: ANN202
    """Active cold candidates not yet asked in this cold spell (asked after their last sign
    of life), oldest first."""
    cutoff = _cold_cutoff(now, rules)
    cold = select(Candidate.id).where(
        Candidate.status == CandidateStatus.ACTIVE, quiet_since(cutoff)
    )
    if campaign is None:
        return cold.order_by(Candidate.id)
    # Asked after every sign of life they gave: this cold spell's question has gone out.
    asked = exists().where(
        Enrolment.candidate_id == Candidate.id,
        Enrolment.campaign_id == campaign.id,
        *(
            or_(column.is_(None), Enrolment.created_at > column)
            for column in (
                Candidate.last_opened_at,
                Candidate.last_clicked_at,
                Candidate.last_replied_at,
                Candidate.consent_at,
            )
        ),
    )
    return cold.where(not_(asked)).order_by(Candidate.id)


# --- sunset and coming back ----------------------------------------------------------------


def sunset_reason(rules: PoolPolicy) -> str:
    """What the candidate's record says about why mailing stopped."""
    months = rules.sunset_after_months
    return f"no open, click or reply in {months} month{'s' if months != 1 else ''}"


def _to_sunset(now: datetime, rules: PoolPolicy):  # noqa: ANN202
    return (
        select(Candidate.id)
        .where(
            Candidate.status == CandidateStatus.ACTIVE,
            quiet_since(months_before(now, rules.sunset_after_months)),
        )
        .order_by(Candidate.id)
    )


# --- the pass and the snapshot --------------------------------------------------------------


@dataclass(frozen=True)
class PoolCounts:
    """The pool at one moment."""

    active: int
    cold: int
    sunset: int

    @property
    def total(self) -> int:
        """Everyone in the pool (unsubscribed, bounced, hired and erased are not)."""
        return self.active + self.cold + self.sunset

    def share(self, part: int) -> float | None:
        """``part`` as a percentage of the pool, one decimal; None for an empty pool."""
        return round(100 * part / self.total, 1) if self.total else None

    def as_dict(self) -> dict[str, Any]:
        """The API's shape: counts and shares."""
        return {
            "active": self.active,
            "cold": self.cold,
            "sunset": self.sunset,
            "total": self.total,
            "shares": {
                "active": self.share(self.active),
                "cold": self.share(self.cold),
                "sunset": self.share(self.sunset),
            },
        }


def counts(session: Session, now: datetime, rules: PoolPolicy) -> PoolCounts:
    """Active, cold and sunset candidates now, in one pass over the candidates."""
    cold = and_(Candidate.status == CandidateStatus.ACTIVE, quiet_since(_cold_cutoff(now, rules)))
    row = session.execute(
        select(
            func.sum(
                case((and_(Candidate.status == CandidateStatus.ACTIVE, not_(cold)), 1), else_=0)
            ),
            func.sum(case((cold, 1), else_=0)),
            func.sum(case((Candidate.status == CandidateStatus.SUNSET, 1), else_=0)),
        ).where(Candidate.status.in_([CandidateStatus.ACTIVE, CandidateStatus.SUNSET]))
    ).one()
    return PoolCounts(*(int(n or 0) for n in row))


def take_snapshot(session: Session, now: datetime, rules: PoolPolicy) -> PoolSnapshot:
    """Write today's (UTC) snapshot; a later pass the same day replaces it."""
    found = counts(session, now, rules)
    day = now.date()
    row = session.get(PoolSnapshot, day)
    if row is None:
        row = PoolSnapshot(day=day, taken_at=now)
        session.add(row)
    row.active, row.cold, row.sunset, row.taken_at = found.active, found.cold, found.sunset, now
    return row


def history(session: Session, now: datetime, days: int) -> list[tuple[date, PoolCounts]]:
    """The daily snapshots of the last ``days`` days, oldest first (days without one left out)."""
    since = (now - timedelta(days=days - 1)).date()
    rows = session.scalars(
        select(PoolSnapshot).where(PoolSnapshot.day >= since).order_by(PoolSnapshot.day)
    )
    return [(row.day, PoolCounts(row.active, row.cold, row.sunset)) for row in rows]


@dataclass(frozen=True)
class PoolReport:
    """What one pass did."""

    asked: int  # enrolled in the re-engagement drip
    sunset: int  # no longer mailed
    snapshot: PoolCounts


def pool_pass(session: Session, now: datetime, rules: PoolPolicy) -> PoolReport:
    """Sunset the silent, enrol the cold in the re-engagement drip, write today's snapshot.

    Set-based and capped at ``BATCH`` per kind: one UPDATE, one INSERT … SELECT; the next pass
    goes on. The caller commits.
    """
    ids = list(session.scalars(_to_sunset(now, rules).limit(BATCH)))
    reason = sunset_reason(rules)
    for candidate in session.scalars(select(Candidate).where(Candidate.id.in_(ids))):
        candidate.status = CandidateStatus.SUNSET
        candidate.sunset_at = now
        candidate.sunset_reason = reason
        candidate.updated_at = now
        # Their drips end now: nothing waits in a queue for someone we stopped writing to.
        end_enrolments(session, candidate, "sunset", now)
    campaign = existing_reengage_campaign(session)
    if campaign is None and session.scalar(select(_cold_to_ask(None, now, rules).exists())):
        # Made on first need, so a pool with nobody cold has no idle system campaign.
        campaign = reengage_campaign(session, now)
    asked = 0
    if campaign is not None:
        # Those who answered (opened, clicked, said yes) need no last call: their drip ends.
        session.execute(
            update(Enrolment)
            .where(
                Enrolment.campaign_id == campaign.id,
                Enrolment.status == EnrolmentStatus.ACTIVE,
                Enrolment.candidate_id.in_(
                    select(Candidate.id).where(not_(quiet_since(_cold_cutoff(now, rules))))
                ),
            )
            .values(
                status=EnrolmentStatus.EXITED,
                exit_reason="re-engaged",
                next_send_at=None,
                ended_at=now,
            )  # fmt: skip
            .execution_options(synchronize_session=False)
        )
        if campaign.status == CampaignStatus.ACTIVE and campaign.steps:
            first_due = now + timedelta(seconds=campaign.steps[0].delay_seconds)
            entrants = _cold_to_ask(campaign, now, rules).limit(BATCH)
            asked = enrol_all(session, campaign.id, entrants, now, first_due)
    session.flush()
    snapshot = take_snapshot(session, now, rules)
    report = PoolReport(
        asked, len(ids), PoolCounts(snapshot.active, snapshot.cold, snapshot.sunset)
    )
    if report.asked or report.sunset:
        log.info("pool health: %s asked to re-engage, %s sunset", report.asked, report.sunset)
    return report


def recently_sunset(session: Session, limit: int = 50) -> list[Candidate]:
    """Sunset candidates, the latest first, for the admin."""
    return list(
        session.scalars(
            select(Candidate)
            .where(Candidate.status == CandidateStatus.SUNSET)
            .order_by(Candidate.sunset_at.desc(), Candidate.id.desc())
            .limit(limit)
        )
    )
