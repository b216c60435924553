"""What recruiters and integrations do to candidates, across audience and campaigns: save one
(and let them enter the campaigns a new tag or segment opens), tag many, enrol one by hand, edit
a profile.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from nurture.core import addresses
from nurture.core.audience import candidates as candidate_service
from nurture.core.audience.schemas import CandidateIn
from nurture.core.audience.search import (
    ERROR_FIELDS,
    PROFILE_FIELDS,
    CandidateFilters,
    clean_tag,
    conditions,
)
from nurture.core.campaigns.enrolment import (
    count_tag_entrants,
    enrol,
    enrol_all,
    enrol_tag_entrants,
    group_campaign,
    on_tags_added,
)
from nurture.core.campaigns.entries import check_segments
from nurture.core.campaigns.entry_rules import (
    first_due,
    in_group_elsewhere,
    may_enter,
    reentry_allows,
)
from nurture.core.compliance.preferences import topic_allows
from nurture.core.errors import ValidationError
from nurture.core.inputs import parse
from nurture.models.campaigns import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
)
from nurture.models.candidates import Candidate, CandidateStatus, candidate_tags


def save_candidate(
    session: Session, data: CandidateIn | Mapping[str, Any], now: datetime, segments: bool = True
) -> tuple[Candidate, bool]:
    """Create or update a candidate, then enrol them where a newly added tag is an entry.

    With ``segments`` (the default) the segment-entry campaigns are checked for them at once;
    an import turns it off and checks each batch's candidates together.
    """
    given = data if isinstance(data, CandidateIn) else parse(CandidateIn, data)
    existing = session.scalar(select(Candidate).where(Candidate.email == given.email))
    before = set(existing.tag_names) if existing is not None else set()
    candidate, created = candidate_service.upsert_candidate(session, given, now)
    on_tags_added(session, candidate, sorted(set(candidate.tag_names) - before), now)
    if segments:
        session.flush()
        check_segments(session, now, [candidate.id])
    return candidate, created


@dataclass
class BulkTagResult:
    """What a bulk tag did."""

    tag: str
    tagged: int
    # Campaign name -> how many candidates it enrolled.
    enrolled: dict[str, int]


def tag_entry_campaigns(session: Session, tag: str) -> list[Campaign]:
    """Active campaigns that candidates enter by receiving ``tag``."""
    return list(
        session.scalars(
            select(Campaign).where(
                Campaign.status == CampaignStatus.ACTIVE,
                Campaign.entry_type == EntryType.TAG,
                Campaign.entry_value == tag,
            )
        )
    )


def bulk_tag(session: Session, filters: CandidateFilters, tag: str, now: datetime) -> BulkTagResult:
    """Tag every candidate the filters match in one INSERT … SELECT, then enrol the newly
    tagged into the active campaigns that start on that tag."""
    return tag_candidates(session, select(Candidate.id).where(*conditions(filters, now)), tag, now)


def tag_candidates(session: Session, ids: Select, tag: str, now: datetime) -> BulkTagResult:
    """Tag the candidates ``ids`` selects (a list's filters, a segment, an import, the rows
    ticked) in one INSERT … SELECT, then enrol the newly tagged where the tag is an entry."""
    name = clean_tag(tag)
    (tag_row,) = candidate_service.tags_named(session, [name])
    session.flush()
    already = exists().where(
        candidate_tags.c.candidate_id == Candidate.id, candidate_tags.c.tag_id == tag_row.id
    )
    targets = select(Candidate.id, literal(tag_row.id)).where(
        Candidate.id.in_(ids),
        # Erased people keep no tags; tagging them would undo part of the erasure.
        Candidate.status != CandidateStatus.ERASED,
        ~already,
    )
    result = session.execute(
        insert(candidate_tags).from_select(["candidate_id", "tag_id"], targets),
        # Without it SQLAlchemy only promises a rowcount for UPDATE and DELETE (psycopg says -1).
        execution_options={"preserve_rowcount": True},
    )
    tagged = result.rowcount
    enrolled = {}
    for campaign in tag_entry_campaigns(session, name):
        # Counted first: enrol_tag_entrants' own rowcount is -1 on PostgreSQL (see above).
        enrolled[campaign.name] = count_tag_entrants(session, campaign)
        enrol_tag_entrants(session, campaign, now)
    tagged_now = select(Candidate.id).where(
        Candidate.id.in_(ids), Candidate.status != CandidateStatus.ERASED
    )
    check_segments(session, now, tagged_now)
    # Candidates loaded earlier in this session hold their old tag lists.
    session.expire_all()
    return BulkTagResult(name, tagged, enrolled)


@dataclass
class BulkEnrolResult:
    """What a bulk enrol did: how many entered, and why the others did not."""

    campaign: str
    enrolled: int
    # Why some were left out -> how many ("already in it", "unsubscribed, bounced or hired"…).
    skipped: dict[str, int]


def bulk_enrol(session: Session, ids: Select, campaign: Campaign, now: datetime) -> BulkEnrolResult:
    """Enrol the candidates ``ids`` selects into an active drip in one INSERT … SELECT; those
    who may not enter (not mailable, topic off, already in it, in a drip of its exclusive group)
    are counted by reason, not enrolled."""

    def refuse(reason: str) -> ValidationError:
        return ValidationError(reason, {"campaign_id": reason})

    if campaign.kind == CampaignKind.BROADCAST:
        raise refuse("a broadcast chooses its audience itself; send one from Broadcasts")
    if campaign.status != CampaignStatus.ACTIVE:
        raise refuse(f"“{campaign.name}” is {campaign.status}, not active")
    if not campaign.steps:
        raise refuse(f"“{campaign.name}” has no steps")
    chosen = [Candidate.id.in_(ids)]

    def how_many(*where: Any) -> int:
        return session.scalar(select(func.count()).select_from(Candidate).where(*chosen, *where))

    skipped = {
        "cannot be mailed (unsubscribed, bounced, hired or erased)": how_many(
            Candidate.status != CandidateStatus.ACTIVE
        ),
        f"turned the {campaign.topic.replace('_', ' ')} topic off": how_many(
            Candidate.status == CandidateStatus.ACTIVE, ~topic_allows(campaign.topic)
        ),
        "already in it, or once were and may not enter again": how_many(
            Candidate.status == CandidateStatus.ACTIVE,
            topic_allows(campaign.topic),
            ~reentry_allows(campaign),
        ),
        f"in another “{campaign.exclusive_group}” campaign": how_many(
            Candidate.status == CandidateStatus.ACTIVE,
            topic_allows(campaign.topic),
            reentry_allows(campaign),
            in_group_elsewhere(campaign),
        ),
    }
    entrants = select(Candidate.id).where(
        *chosen,
        Candidate.status == CandidateStatus.ACTIVE,
        topic_allows(campaign.topic),
        may_enter(campaign),
    )
    enrolled = enrol_all(session, campaign.id, entrants, now, first_due(campaign, now))
    session.expire_all()
    return BulkEnrolResult(campaign.name, enrolled, {k: v for k, v in skipped.items() if v})


def enrol_by_hand(
    session: Session, candidate: Candidate, campaign: Campaign, now: datetime
) -> Enrolment:
    """Enrol the candidate, or say in ValidationError at ``campaign_id`` why they cannot be."""

    def refuse(reason: str) -> ValidationError:
        return ValidationError(reason, {"campaign_id": reason})

    if campaign.status != CampaignStatus.ACTIVE:
        raise refuse(f"“{campaign.name}” is {campaign.status}, not active")
    if not campaign.steps:
        raise refuse(f"“{campaign.name}” has no steps")
    if candidate.status != CandidateStatus.ACTIVE:
        raise refuse(f"they cannot be enrolled: they are {candidate.status}")
    reason = addresses.suppression_reason(session, candidate.email)
    if reason:
        raise refuse(f"they cannot be enrolled: the address is suppressed ({reason})")
    running = session.scalar(
        select(Enrolment.id).where(
            Enrolment.candidate_id == candidate.id,
            Enrolment.campaign_id == campaign.id,
            Enrolment.status == EnrolmentStatus.ACTIVE,
        )
    )
    if running is not None:
        raise refuse(f"they are already enrolled in “{campaign.name}”")
    other = group_campaign(session, candidate, campaign)
    if other is not None:
        raise refuse(
            f"they are in “{other}”, which shares the exclusive group “{campaign.exclusive_group}”"
        )
    enrolment = enrol(session, candidate, campaign, now)
    if enrolment is None:  # enrol() has the last word on who may be mailed
        raise refuse("they cannot be enrolled")
    return enrolment


def add_tags(
    session: Session, candidate: Candidate, text: str, now: datetime
) -> tuple[list[str], int]:
    """Add comma-separated tags; returns (newly added names, campaigns they entered)."""
    parts = [part for part in (text or "").split(",") if part.strip()]
    names = sorted({clean_tag(part) for part in parts}) if parts else [clean_tag("")]
    new = [name for name in names if name not in candidate.tag_names]
    if new:
        candidate.tags = [*candidate.tags, *candidate_service.tags_named(session, new)]
        candidate.updated_at = now
        session.flush()
    entered = on_tags_added(session, candidate, new, now)
    if new:
        check_segments(session, now, [candidate.id])
    return new, entered


def remove_tag(session: Session, candidate: Candidate, tag_id: int, now: datetime) -> str | None:
    """Take one tag off the candidate; returns its name, or None when they did not carry it."""
    for tag in candidate.tags:
        if tag.id == tag_id:
            candidate.tags = [t for t in candidate.tags if t.id != tag_id]
            candidate.updated_at = now
            session.flush()
            check_segments(session, now, [candidate.id])
            return tag.name
    return None


def _profile_data(
    candidate: Candidate, values: Mapping[str, str], problems: dict[str, str]
) -> dict[str, Any]:
    """The edit form's fields as the candidate model takes them."""
    data: dict[str, Any] = {"email": candidate.email}
    for name in PROFILE_FIELDS:
        if name not in ("skills", "consent_basis", "consent_source", "consent_at", "attributes"):
            data[name] = values.get(name) or ""
    data["recruiter_email"] = (values.get("recruiter_email") or "").strip()
    data["skills"] = [part for part in (values.get("skills") or "").split(",") if part.strip()]
    data["consent"] = {
        key: (values.get(f"consent_{key}") or "").strip() for key in ("basis", "source", "at")
    }
    raw_attributes = (values.get("attributes") or "").strip()
    try:
        data["attributes"] = json.loads(raw_attributes) if raw_attributes else {}
    except json.JSONDecodeError as exc:
        problems["attributes"] = f"is not valid JSON ({exc.msg} at line {exc.lineno})"
    return data


def update_profile(
    session: Session, candidate: Candidate, values: Mapping[str, str], now: datetime
) -> None:
    """Apply the edit form through the candidate model; any bad field raises ValidationError
    (keyed by form field) and the caller rolls back, so nothing is half-saved."""
    problems: dict[str, str] = {}
    data = _profile_data(candidate, values, problems)
    try:
        candidate_service.upsert_candidate(session, data, now)
    except ValidationError as exc:
        for name, reason in exc.fields.items():
            name = name.split("[")[0]  # skills[2]: the skills field
            problems[ERROR_FIELDS.get(name, name)] = reason
    if problems:
        raise ValidationError("some fields are not valid", problems)
    # The candidates service keeps a value it is given blank; a cleared field here means clear.
    if not data["recruiter_email"]:
        candidate.recruiter_email = ""
    if not data["consent"]["at"]:
        candidate.consent_at = None
    session.flush()
    check_segments(session, now, [candidate.id])
