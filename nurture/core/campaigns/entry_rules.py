"""Who may enter a campaign and when: entry filters, the entry delay, topics and re-entry.

Pure rules (and the SQL conditions they become), used by enrolment and by the segment pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, select

from nurture.core.campaigns.durations import parse_delay
from nurture.models.campaigns import (
    BEFORE_ACTIVATION,
    Campaign,
    Enrolment,
    EnrolmentStatus,
    Reentry,
)
from nurture.models.candidates import Candidate


def passes_entry_filter(candidate: Candidate, entry_filter: dict[str, Any] | None) -> bool:
    """Whether the candidate's rejection reason and stage reached are among those the filter names.

    Compared without regard to case or surrounding spaces; a list left out lets everyone through.
    """
    entry_filter = entry_filter or {}
    reasons = entry_filter.get("rejection_reasons")
    if reasons and (candidate.rejection_reason or "").strip().lower() not in reasons:
        return False
    stages = entry_filter.get("stages")
    return not (stages and (candidate.stage or "").strip().lower() not in stages)


def entry_delay(campaign: Campaign) -> timedelta:
    """The wait between entering the campaign and its first step's own delay."""
    raw = (campaign.entry_filter or {}).get("delay")
    return parse_delay(raw) if raw else timedelta(0)


def first_due(campaign: Campaign, now: datetime) -> datetime:
    """When a candidate entering now gets the first step."""
    return now + entry_delay(campaign) + timedelta(seconds=campaign.steps[0].delay_seconds)


def may_enter(campaign: Campaign) -> ColumnElement[bool]:
    """SQL: a candidate the campaign's re-entry policy and its exclusive group let in now (over
    ``Candidate.id``)."""
    return and_(reentry_allows(campaign), ~in_group_elsewhere(campaign))


def reentry_allows(campaign: Campaign) -> ColumnElement[bool]:
    """SQL: the campaign's re-entry policy lets the candidate (``Candidate.id``) in now."""
    mine = Enrolment.candidate_id == Candidate.id, Enrolment.campaign_id == campaign.id
    if campaign.reentry == Reentry.NEVER:
        return ~exists().where(*mine)
    # "always" restarts a running drip only on a new event; a segment member stays enrolled.
    return and_(
        ~exists().where(*mine, Enrolment.status == EnrolmentStatus.ACTIVE),
        ~exists().where(*mine, Enrolment.exit_reason == BEFORE_ACTIVATION),
    )


def in_group_elsewhere(campaign: Campaign) -> ColumnElement[bool]:
    """SQL: the candidate (``Candidate.id``) is active in another campaign of the group."""
    if not campaign.exclusive_group:
        return false()
    others = select(Campaign.id).where(
        Campaign.exclusive_group == campaign.exclusive_group, Campaign.id != campaign.id
    )
    return exists().where(
        Enrolment.candidate_id == Candidate.id,
        Enrolment.status == EnrolmentStatus.ACTIVE,
        Enrolment.campaign_id.in_(others),
    )
