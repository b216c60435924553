"""Creating campaigns, changing their status, and counting what their steps achieved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, distinct, func, select, update
from sqlalchemy.orm import Session

from nurture.core import settings as core_settings
from nurture.core.campaigns.enrolment import count_tag_entrants, enrol_tag_entrants
from nurture.core.campaigns.entries import (
    count_segment_entrants,
    enrol_segment_entrants,
    entry_segment_id,
    in_segment,
    keep_out_current_members,
    segment_rules,
)
from nurture.core.campaigns.schemas import CampaignIn
from nurture.core.compliance.identity import require_sender_identity
from nurture.core.content.rendering import TemplateLibrary
from nurture.core.content.templates import named_html, sample_copy
from nurture.core.errors import Conflict, ValidationError
from nurture.core.inputs import parse
from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    EmailTemplate,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    Event,
    EventKind,
    Message,
    MessageState,
    Segment,
    Step,
)
from nurture.models.base import MAX_ID, rows_changed
from nurture.models.campaigns import BEFORE_ACTIVATION

# The group rejection drips share by default: one follow-up per rejection.
REJECTION_GROUP = "rejection-follow-up"

# Which status changes are allowed, and from where.
TRANSITIONS = {
    CampaignStatus.ACTIVE: {CampaignStatus.DRAFT, CampaignStatus.PAUSED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE},
    CampaignStatus.ARCHIVED: {CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED},
}
INVALID = "the campaign is not valid"


def definition(data: CampaignIn | Mapping[str, Any], library: TemplateLibrary) -> CampaignIn:
    """A campaign body checked as a CampaignIn (its templates compiled), or ValidationError."""
    if isinstance(data, CampaignIn):
        return data
    return parse(CampaignIn, data, context={"library": library}, message=INVALID)


def _require_segment(session: Session, clean: dict[str, Any]) -> None:
    """The segment a campaign enters by (or a broadcast goes to) exists."""
    segment = clean["entry_value"].removeprefix(f"{EntryType.SEGMENT}:")
    if (clean["entry_type"] == EntryType.SEGMENT or segment != clean["entry_value"]) and (
        not segment.isdigit()
        or int(segment[:12]) > MAX_ID
        or session.get(Segment, int(segment)) is None
    ):
        raise ValidationError(INVALID, {"entry.segment_id": f"no segment {segment}"})


def create_campaign(
    session: Session, data: CampaignIn | Mapping[str, Any], library: TemplateLibrary, now: datetime
) -> Campaign:
    """Validate a campaign with its steps and store it as a draft."""
    given = definition(data, library)
    clean = given.stored()
    _require_segment(session, clean)
    _check_entry_segment(session, clean)
    campaign = Campaign(
        **clean,
        status=CampaignStatus.DRAFT,
        created_at=now,
        updated_at=now,
        steps=given.step_rows(),
    )
    session.add(campaign)
    session.flush()
    return campaign


def _check_entry_segment(session: Session, clean: dict[str, Any]) -> None:
    """The "also enters" segment must exist."""
    segment_id = clean.get("entry_segment_id")
    if segment_id is not None and session.get(Segment, segment_id) is None:
        raise ValidationError(
            "the campaign is not valid", {"entry_segment_id": f"no segment {segment_id}"}
        )


def set_status(
    session: Session,
    campaign: Campaign,
    status: str,
    now: datetime,
    *,
    settings: Mapping[str, Any] | None = None,
) -> Campaign:
    """Move a campaign to ``status`` if its current status allows it.

    Activating needs the sender identity and postal address in ``settings`` (the running
    app's configuration when not given).
    """
    target = CampaignStatus(status)
    if campaign.status == target:
        return campaign
    if campaign.status not in TRANSITIONS.get(target, set()):
        raise Conflict(f"a {campaign.status} campaign cannot become {target}")
    if target == CampaignStatus.ACTIVE and not campaign.steps:
        raise Conflict("a campaign without steps cannot be activated")
    if target == CampaignStatus.ACTIVE:
        require_sender_identity(core_settings.current() if settings is None else settings)
    campaign.status = target
    campaign.updated_at = now
    if target == CampaignStatus.ACTIVE:
        # Everyone who already carries the entry tag starts now; later taggings enrol one by one.
        enrol_tag_entrants(session, campaign, now)
        # Messages held while paused go out again: the scheduler re-enqueues them at once.
        session.execute(
            update(Message)
            .where(Message.campaign_id == campaign.id, Message.state == MessageState.QUEUED)
            .values(enqueued_at=None)
        )
    return campaign


STAT_EVENTS = {
    "opened": EventKind.OPEN,
    "clicked": EventKind.CLICK,
    "unsubscribed": EventKind.UNSUBSCRIBE,
    "bounced": EventKind.BOUNCE,
}


def campaign_stats(session: Session, campaign: Campaign) -> list[dict[str, Any]]:
    """Per step: unique candidates sent, opened, clicked, unsubscribed, bounced and failed."""
    rows: dict[int, dict[str, Any]] = {
        step.id: {
            "step_id": step.id,
            "position": step.position,
            "sent": 0,
            "failed": 0,
            **{name: 0 for name in STAT_EVENTS},
        }
        for step in campaign.steps
    }
    state_counts = session.execute(
        select(Message.step_id, Message.state, func.count(distinct(Message.candidate_id)))
        .where(Message.campaign_id == campaign.id)
        .where(Message.state.in_([MessageState.SENT, MessageState.FAILED]))
        .group_by(Message.step_id, Message.state)
    )
    for step_id, state, count in state_counts:
        rows[step_id]["sent" if state == MessageState.SENT else "failed"] = count
    event_counts = session.execute(
        select(Message.step_id, Event.kind, func.count(distinct(Event.candidate_id)))
        .join(Event, and_(Event.message_id == Message.id, Event.machine.is_(False)))
        .where(Message.campaign_id == campaign.id)
        .group_by(Message.step_id, Event.kind)
    )
    kinds: dict[str, str] = {kind: name for name, kind in STAT_EVENTS.items()}
    for step_id, kind, count in event_counts:
        if kind in kinds:
            rows[step_id][kinds[kind]] = count
    return [rows[step.id] for step in campaign.steps]


def _schedule_out(campaign: Campaign) -> str | None:
    """A broadcast's time as given: wall-clock time without a zone when sent at local time."""
    if campaign.scheduled_at is None:
        return None
    if campaign.local_time:
        return campaign.scheduled_at.replace(tzinfo=None).isoformat()
    return campaign.scheduled_at.isoformat()


def _ab_test_out(step: Step) -> dict[str, Any] | None:
    """A step's A/B test as the API takes it, with its winner once decided (None without)."""
    if not step.ab_sample_percent or not step.variants:
        return None
    return {
        "variants": [{"subject": v.subject, "preheader": v.preheader} for v in step.variants],
        "sample_percent": step.ab_sample_percent,
        "metric": step.ab_metric,
        "decide_after": f"PT{step.ab_decide_after_seconds}S"
        if step.ab_decide_after_seconds
        else "",
        "min_sample": step.ab_min_sample,
        "winner": step.ab_winner,
    }


def campaign_dict(campaign: Campaign) -> dict[str, Any]:
    """The API's view of a campaign."""
    entry: dict[str, Any] = {}
    kind, _, value = campaign.entry_value.partition(":")
    if campaign.kind == CampaignKind.BROADCAST and value:
        entry = {"segment_id": int(value)} if kind == EntryType.SEGMENT else {"tag": value}
    elif campaign.entry_type == EntryType.ATS_EVENT:
        entry = {"ats_event": campaign.entry_value}
    elif campaign.entry_type == EntryType.TAG:
        entry = {"tag": campaign.entry_value}
    elif campaign.entry_type == EntryType.SEGMENT:
        entry = {"segment_id": campaign.entry_value}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "status": campaign.status,
        "entry": entry,
        "sender": {
            "name": campaign.sender_name,
            "email": campaign.sender_email,
            "use_recruiter": campaign.sender_is_recruiter,
        },
        "send_window": campaign.send_window,
        "topic": campaign.topic,
        "entry_filter": campaign.entry_filter,
        "reentry": campaign.reentry,
        "exit_on": campaign.exit_on,
        "scheduled_at": _schedule_out(campaign),
        "local_time": campaign.local_time,
        "exclusive_group": campaign.exclusive_group,
        "entry_segment_id": campaign.entry_segment_id,
        "steps": [
            {
                "id": s.id,
                "position": s.position,
                "delay": s.delay,
                "subject": s.subject,
                "template": s.template,
                "html": s.html,
                "condition": s.condition,
                "category": s.category,
                "require_strengths": s.require_strengths,
                "ab_test": _ab_test_out(s),
                "translations": s.translations or {},
            }
            for s in campaign.steps
        ],
    }


# --- the admin's drip builder and status changes ---------------------------------------------

DELAY_UNITS = {"days": "P{}D", "hours": "PT{}H"}
# The builder's stand-in for a step whose HTML came with it through the API (no template name).
OWN_HTML = "__own_html__"
_AMOUNT = re.compile(r"\d{1,5}")


def delay_iso(amount: str, unit: str, field: str) -> str:
    """A delay typed as a number and a unit (days, hours) as ISO-8601: ``P3D``, ``PT12H``."""
    amount = (amount or "").strip()
    if unit not in DELAY_UNITS:
        raise ValidationError("unknown unit", {field: "choose days or hours"})
    if amount.startswith("-"):
        raise ValidationError("negative delay", {field: "a delay cannot be negative"})
    if not _AMOUNT.fullmatch(amount):
        raise ValidationError("not a number", {field: f"enter a whole number of {unit}, 0 or more"})
    return DELAY_UNITS[unit].format(int(amount))


def delay_parts(seconds: int) -> tuple[int, str] | None:
    """A stored delay as (amount, unit) for the builder; None when neither unit fits it."""
    if seconds % 86400 == 0:
        return seconds // 86400, "days"
    if seconds % 3600 == 0:
        return seconds // 3600, "hours"
    return None


def template_names(session: Session, library: TemplateLibrary) -> dict[str, list[str]]:
    """The templates a step may use: the starter files and those written in the admin."""
    starters = library.names()
    # A starter the team edited in place is still the starter, under its name.
    edited = [
        name
        for name in session.scalars(select(EmailTemplate.name).order_by(EmailTemplate.name))
        if name not in starters
    ]
    return {"library": starters, "edited": edited}


def step_message_counts(session: Session, campaign: Campaign) -> dict[int, int]:
    """How many messages each step of the campaign has in its history (any state)."""
    rows = session.execute(
        select(Message.step_id, func.count())
        .where(Message.campaign_id == campaign.id)
        .group_by(Message.step_id)
    )
    return {step_id: count for step_id, count in rows}


def _typed_delay(amount: Any, unit: Any, field: str, errors: dict[str, str]) -> str:
    """A delay typed as a number and a unit, as ISO-8601; its problem noted at ``field``."""
    try:
        return delay_iso(str(amount or ""), str(unit or ""), field)
    except ValidationError as exc:
        errors.update(exc.fields)
        return "PT0S"  # the real problem is reported above


def _builder_step(
    index: int, raw: dict[str, Any], existing: dict[int, Step], errors: dict[str, str]
) -> dict[str, Any]:
    """One of the builder's steps as the API's step."""
    where = f"steps[{index}]"
    step = {
        "subject": raw.get("subject") or "",
        "condition": raw.get("condition") or "",
        "require_strengths": raw.get("require_strengths") in ("on", True),
        "template": raw.get("template") or "",
        "category": raw.get("category") or "",
        "delay": raw.get("delay")
        or _typed_delay(raw.get("delay_amount"), raw.get("delay_unit"), f"{where}.delay", errors),
    }
    if step["template"] == OWN_HTML:
        own = existing.get(raw.get("id") or 0)
        if own is None or not own.html:
            errors[f"{where}.template"] = "choose a template"
            step["template"] = ""
        else:
            step.update(template="", html=own.html, text=own.text)
    elif not step["template"]:
        errors[f"{where}.template"] = "choose a template"
    return step


def _builder_entry_filter(data: dict[str, Any], errors: dict[str, str]) -> Any:
    """The builder's entry filter as the API's; its delay may come as an amount and a unit."""
    if not isinstance(data.get("entry_filter"), dict):
        return data["entry_filter"]  # the API's check reports what is wrong
    entry_filter = dict(data["entry_filter"])
    amount = str(entry_filter.pop("delay_amount", "") or "").strip()
    unit = entry_filter.pop("delay_unit", None)
    # No unit: ``delay`` as in the API; "iso": one set through the API that no unit shows.
    if unit not in (None, "iso"):
        entry_filter.pop("delay", None)
        if amount.strip("0"):  # empty or 0: no wait of its own
            entry_filter["delay"] = _typed_delay(amount, unit, "entry_filter.delay", errors)
    entry = data.get("entry")
    if not (isinstance(entry, dict) and "ats_event" in entry):
        # Only an ATS rejection carries a reason and a stage; any other entry ignores them,
        # which would look like a filter that is not there.
        for key in ("rejection_reasons", "stages"):
            if entry_filter.get(key):
                errors[f"entry_filter.{key}"] = (
                    "only candidates the ATS rejects are filtered this way; "
                    "choose that entry or leave this empty"
                )
    return entry_filter


def _builder_payload(
    data: dict[str, Any], existing: dict[int, Step], errors: dict[str, str]
) -> dict[str, Any]:
    """Turn the builder's fields into the API's campaign body, noting what is wrong."""
    body = {
        "name": data.get("name"),
        "kind": CampaignKind.DRIP,
        "description": data.get("description") or "",
        "entry": data.get("entry"),
        "exit_on": data.get("exit_on") or [],
        # A form's empty field comes as None: the same as one left out.
        "sender": {k: v for k, v in (data.get("sender") or {}).items() if v is not None},
        "steps": [
            _builder_step(index, raw, existing, errors)
            for index, raw in enumerate(data.get("steps") or [])
        ],
    }
    # Send window, topic, re-entry and the exclusive group go to the API's own checks as they are.
    for key in ("send_window", "topic", "reentry", "exclusive_group", "entry_segment_id"):
        if key in data:
            body[key] = data[key]
    if "entry_filter" in data:
        body["entry_filter"] = _builder_entry_filter(data, errors)
    return body


def _step_locks(
    session: Session, campaign: Campaign, ids: list[int | None], errors: dict[str, str]
) -> None:
    """Steps with mail in their history keep their place: messages and enrolments point at them."""
    counts = step_message_counts(session, campaign)
    for step in campaign.steps:
        if not counts.get(step.id):
            continue
        if step.id not in ids:
            errors["steps"] = (
                f"step {step.position + 1} already has mail in its history "
                f"({counts[step.id]} sent or queued), so it cannot be removed; "
                "archive the campaign and start a new one instead"
            )
        elif ids.index(step.id) != step.position:
            errors[f"steps[{ids.index(step.id)}].position"] = (
                f"this step already has mail in its history, so it stays step {step.position + 1}"
            )


def _kept_step_ids(data: dict[str, Any], existing: dict[int, Step]) -> list[int | None]:
    """Per step of the builder, the id of the stored step it edits, or None for a new one."""
    ids: list[int | None] = []
    for raw in data.get("steps") or []:
        step_id = raw.get("id")
        # An id from another campaign, or given twice, is a new step, never someone else's row.
        ids.append(step_id if step_id in existing and step_id not in ids else None)
    return ids


def _checked_drip(
    session: Session,
    campaign: Campaign | None,
    data: dict[str, Any],
    existing: dict[int, Step],
    ids: list[int | None],
    library: TemplateLibrary,
) -> CampaignIn:
    """The builder's fields as a checked campaign, or ValidationError with every problem."""
    errors: dict[str, str] = {}
    payload = _builder_payload(data, existing, errors)
    if campaign is not None:
        # What the caller did not send (a form without those fields) keeps its stored value.
        for key in (
            "send_window", "topic", "reentry", "entry_filter", "exclusive_group",
            "entry_segment_id",
        ):  # fmt: skip
            payload.setdefault(key, getattr(campaign, key))
        _step_locks(session, campaign, ids, errors)
    try:
        given = definition(payload, library)
    except ValidationError as exc:
        # The builder's own words win for the same field.
        raise ValidationError(INVALID, {**exc.fields, **errors}) from None
    if errors:
        raise ValidationError(INVALID, errors)
    return given


def save_drip(
    session: Session,
    campaign: Campaign | None,
    data: dict[str, Any],
    library: TemplateLibrary,
    now: datetime,
) -> Campaign:
    """Create a drip from the admin's builder, or update one; all is checked before any write.

    ``data`` has ``name``, ``description``, ``entry`` (as in the API), ``exit_on``, ``sender``
    and ``steps``: each with an optional ``id`` (an existing step), either ``delay`` (ISO-8601)
    or ``delay_amount`` and ``delay_unit``, ``template``, ``subject`` and ``condition``.
    Steps may name a ``category`` (personal or regular mail). It may have ``send_window``,
    ``topic``, ``reentry``, ``entry_filter``, ``exclusive_group`` and ``entry_segment_id`` as
    in the API (the
    filter's delay may also come as ``delay_amount`` and ``delay_unit``); when editing, those
    left out keep their stored values.
    """
    if campaign is not None and campaign.status == CampaignStatus.ARCHIVED:
        raise Conflict("an archived campaign cannot be edited")
    existing = {step.id: step for step in campaign.steps} if campaign is not None else {}
    ids = _kept_step_ids(data, existing)
    given = _checked_drip(session, campaign, data, existing, ids, library)
    clean, steps = given.stored(), given.step_rows()
    _require_segment(session, clean)
    _check_entry_segment(session, clean)
    if campaign is None:
        campaign = Campaign(
            **clean, status=CampaignStatus.DRAFT, created_at=now, updated_at=now, steps=steps
        )
        session.add(campaign)
        session.flush()
        return campaign
    for key, value in clean.items():
        if key != "kind":
            setattr(campaign, key, value)
    campaign.updated_at = now
    _replace_steps(session, campaign, ids, steps, existing)
    return campaign


def _replace_steps(
    session: Session,
    campaign: Campaign,
    ids: list[int | None],
    fresh: list[Step],
    existing: dict[int, Step],
) -> None:
    """Update kept steps in place (their ids carry the history), add new ones, drop the rest."""
    ordered: list[Step] = []
    for step_id, new in zip(ids, fresh, strict=True):
        if step_id is None:
            ordered.append(new)
            continue
        step = existing[step_id]
        for name in (
            "delay", "delay_seconds", "template", "subject", "html", "text", "condition",
            "category",
            "require_strengths",
        ):  # fmt: skip
            setattr(step, name, getattr(new, name))
        ordered.append(step)
    kept = {step.id for step in ordered if step.id is not None}
    # Two passes, because (campaign, position) is unique: park kept steps on negative positions
    # and delete dropped ones first, then give every step its final place.
    for index, step in enumerate(ordered):
        if step.id is not None:
            step.position = -1 - index
    for step_id, step in existing.items():
        if step_id not in kept:
            session.delete(step)
    session.flush()
    for index, step in enumerate(ordered):
        step.position = index
    campaign.steps = ordered
    session.flush()


# What each button does: where it may be pressed from, and where it leads.
ACTIONS = {
    "activate": ({CampaignStatus.DRAFT}, CampaignStatus.ACTIVE),
    "pause": ({CampaignStatus.ACTIVE}, CampaignStatus.PAUSED),
    "resume": ({CampaignStatus.PAUSED}, CampaignStatus.ACTIVE),
    "archive": (
        {CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED},
        CampaignStatus.ARCHIVED,
    ),
}


def action_problem(campaign: Campaign, action: str) -> str:
    """Why ``action`` cannot be applied to the campaign now, or "" when it can."""
    if action not in ACTIONS:
        return f"unknown action {action!r}"
    sources, _ = ACTIONS[action]
    if campaign.status not in sources:
        return f"a {campaign.status} campaign cannot be {action}d"
    if ACTIONS[action][1] == CampaignStatus.ACTIVE and not campaign.steps:
        return "a campaign without steps cannot be activated"
    return ""


def status_change_impact(
    session: Session, campaign: Campaign, action: str, now: datetime | None = None
) -> dict[str, Any]:
    """What a status change would touch: who it enrols, and the enrolments and mail it affects."""
    active = session.scalar(
        select(func.count())
        .select_from(Enrolment)
        .where(Enrolment.campaign_id == campaign.id, Enrolment.status == EnrolmentStatus.ACTIVE)
    )
    queued = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.campaign_id == campaign.id, Message.state == MessageState.QUEUED)
    )
    entering = segment_now = 0
    overlap: list[Overlap] = []
    if action in ("activate", "resume"):
        entering = count_tag_entrants(session, campaign)
        now = now or datetime.now(UTC)
        segment_now = count_segment_entrants(session, campaign, now)
        overlap = overlaps(session, campaign, now)
    return {
        "action": action,
        "problem": action_problem(campaign, action),
        "entering": entering,
        # Members of its segment who would enter now (or be kept out: "join from now on").
        "segment_now": segment_now,
        "active_enrolments": active or 0,
        "queued_messages": queued or 0,
        "overlap": overlap,
    }


@dataclass(frozen=True)
class Overlap:
    """Another live campaign a candidate of this one may get as well, and how many would."""

    campaign_id: int
    name: str
    status: str
    why: str  # "the same ATS event", "the same tag", "the same segment"
    both: int  # candidates who would be in both
    exclusive: bool  # the two share an exclusive group: nobody gets both
    window: str  # what ``both`` counts


def overlaps(session: Session, campaign: Campaign, now: datetime) -> list[Overlap]:
    """The other active or paused drips with the same trigger or audience, and how many
    candidates would get both (none when they share an exclusive group)."""
    others = session.scalars(
        select(Campaign).where(
            Campaign.id != campaign.id,
            Campaign.status.in_([CampaignStatus.ACTIVE, CampaignStatus.PAUSED]),
            Campaign.kind == CampaignKind.DRIP,
        )
    ).all()
    mine = entry_segment_id(campaign)
    found = []
    for other in others:
        exclusive = bool(campaign.exclusive_group) and (
            campaign.exclusive_group == other.exclusive_group
        )
        if (
            campaign.entry_type == EntryType.ATS_EVENT
            and other.entry_type == EntryType.ATS_EVENT
            and other.entry_value == campaign.entry_value
        ):
            # Who the other one took in the last 90 days that this one's filter lets in too.
            recent = select(Enrolment.candidate_id).where(
                Enrolment.campaign_id == other.id,
                Enrolment.created_at >= now - timedelta(days=90),
                Enrolment.exit_reason != BEFORE_ACTIVATION,
            )
            both = _count(session, [Candidate.id.in_(recent), *_filter_sql(campaign)])
            found.append(
                Overlap(
                    other.id,
                    other.name,
                    other.status,
                    f"the same ATS event, {campaign.entry_value}",
                    both,
                    exclusive,
                    "of those it enrolled in the last 90 days",
                )  # fmt: skip
            )
        elif (
            campaign.entry_type == EntryType.TAG
            and other.entry_type == EntryType.TAG
            and other.entry_value == campaign.entry_value
        ):
            both = count_tag_entrants(session, campaign) + _count(
                session, [Candidate.id.in_(_active_in(campaign))]
            )
            found.append(
                Overlap(
                    other.id,
                    other.name,
                    other.status,
                    f"the same tag, {other.entry_value}",
                    both,
                    exclusive,
                    "carrying the tag now",
                )  # fmt: skip
            )
        elif mine is not None and entry_segment_id(other) == mine:
            rules = segment_rules(session, campaign) or {"all": []}
            both = _count(session, [in_segment(rules, now), Candidate.status == "active"])
            found.append(
                Overlap(
                    other.id,
                    other.name,
                    other.status,
                    "the same segment",
                    both,
                    exclusive,
                    "in the segment now",
                )  # fmt: skip
            )
    return [o if not o.exclusive else replace(o, both=0) for o in found]


def _active_in(campaign: Campaign) -> Select[int]:
    return select(Enrolment.candidate_id).where(
        Enrolment.campaign_id == campaign.id, Enrolment.status == EnrolmentStatus.ACTIVE
    )


def _count(session: Session, where: list[Any]) -> int:
    return session.scalar(select(func.count()).select_from(Candidate).where(*where)) or 0


def _filter_sql(campaign: Campaign) -> list[Any]:
    """The campaign's entry filter (rejection reasons, stages) as SQL over ``Candidate``."""
    where = []
    entry_filter = campaign.entry_filter or {}
    if entry_filter.get("rejection_reasons"):
        where.append(
            func.lower(func.trim(Candidate.rejection_reason)).in_(entry_filter["rejection_reasons"])
        )
    if entry_filter.get("stages"):
        where.append(func.lower(func.trim(Candidate.stage)).in_(entry_filter["stages"]))
    return where


def sample_copy_steps(campaign: Campaign, library: TemplateLibrary) -> list[str]:
    """Steps whose mail still holds a starter's sample copy: "step 2: it still holds …"."""
    problems = []
    for step in campaign.steps:
        html = named_html(library, step.template) if step.template else step.html
        problem = sample_copy(library, html)
        if problem:
            problems.append(f"step {step.position + 1} ({step.template or 'own HTML'}): {problem}")
    return problems


def archive_campaign(session: Session, campaign: Campaign, now: datetime) -> int:
    """Archive a campaign: active enrolments exit ("archived") and its queued mail is dropped."""
    set_status(session, campaign, CampaignStatus.ARCHIVED, now)
    ended = session.execute(
        update(Enrolment)
        .where(Enrolment.campaign_id == campaign.id, Enrolment.status == EnrolmentStatus.ACTIVE)
        .values(
            status=EnrolmentStatus.EXITED, exit_reason="archived", next_send_at=None, ended_at=now
        )
    )
    # Claims only take mail of active campaigns, so these would otherwise wait forever.
    session.execute(
        update(Message)
        .where(Message.campaign_id == campaign.id, Message.state == MessageState.QUEUED)
        .values(state=MessageState.SKIPPED, error="campaign archived")
    )
    return rows_changed(ended)


def apply_action(
    session: Session,
    campaign: Campaign,
    action: str,
    now: datetime,
    *,
    segment_members: bool = True,
) -> Campaign:
    """Activate, pause, resume or archive a campaign; Conflict when its status does not allow it.

    Activating a drip with a segment enrols the members who match now, or, without
    ``segment_members``, keeps them out: only those who join the segment from now on enter.
    """
    problem = action_problem(campaign, action)
    if problem:
        raise Conflict(problem)
    if action == "archive":
        archive_campaign(session, campaign, now)
        return campaign
    set_status(session, campaign, ACTIONS[action][1], now)
    if action == "activate" and entry_segment_id(campaign) is not None:
        if segment_members:
            enrol_segment_entrants(session, campaign, now)
        else:
            keep_out_current_members(session, campaign, now)
    return campaign


def enrolments_page(
    session: Session, campaign: Campaign, page: int, per_page: int = 25
) -> tuple[list[Any], int]:
    """One page of a campaign's enrolments, newest first, with who they are; and the total."""
    shown = (Enrolment.campaign_id == campaign.id, Enrolment.exit_reason != BEFORE_ACTIVATION)
    total = session.scalar(select(func.count()).select_from(Enrolment).where(*shown))
    rows = session.execute(
        select(
            Enrolment,
            Candidate.first_name,
            Candidate.last_name,
            Candidate.email,
            Candidate.status.label("candidate_status"),
        )
        .join(Candidate, Candidate.id == Enrolment.candidate_id)
        .where(*shown)
        .order_by(Enrolment.created_at.desc(), Enrolment.id.desc())
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total or 0


# --- mail that waits: why, until when, and how many a send would hold --------------------------


@dataclass(frozen=True)
class Waiting:
    """Queued mail that waits for the same reason: how many, and when the first and last go."""

    reason: str  # as stored by sending: "frequency cap", "send window", "paused", "attempt …"
    count: int
    first: datetime | None
    last: datetime | None


def waiting(session: Session, now: datetime, *, campaign_id: int | None = None) -> list[Waiting]:
    """Queued mail held back for later (cap, window, pause, a retry), by reason."""
    where = [Message.state == MessageState.QUEUED, Message.retry_at > now]
    if campaign_id is not None:
        where.append(Message.campaign_id == campaign_id)
    rows = session.execute(
        select(
            Message.error,
            func.count(),
            func.min(Message.retry_at),
            func.max(Message.retry_at),
        )
        .where(*where)
        .group_by(Message.error)
        .order_by(func.count().desc())
    ).all()
    groups: dict[str, Waiting] = {}
    for error, count, first, last in rows:
        # "attempt 2 of 5: 451 …" and friends are one group: retries.
        reason = "retry" if (error or "").startswith("attempt") else (error or "")
        known = groups.get(reason)
        if known is not None:
            first = min(filter(None, (known.first, first)), default=None)
            last = max(filter(None, (known.last, last)), default=None)
            count += known.count
        groups[reason] = Waiting(reason, count, _aware(first), _aware(last))
    return list(groups.values())


def _aware(value: Any) -> datetime | None:
    """min()/max() of a UTC column comes back as the database wrote it."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def held_mail(session: Session, enrolment_ids: list[int], now: datetime) -> dict[int, Message]:
    """Per enrolment, its queued mail that waits for later (cap, window, pause, a retry)."""
    if not enrolment_ids:
        return {}
    return {
        m.enrolment_id: m
        for m in session.scalars(
            select(Message).where(
                Message.enrolment_id.in_(enrolment_ids),
                Message.state == MessageState.QUEUED,
                Message.retry_at > now,
            )
        )
        if m.enrolment_id is not None
    }


def skipped_reasons(session: Session, campaign_id: int) -> list[tuple[str, int]]:
    """Why a campaign's skipped mail was not sent, most common first."""
    return [
        (error or "not given", count)
        for error, count in session.execute(
            select(Message.error, func.count())
            .where(Message.campaign_id == campaign_id, Message.state == MessageState.SKIPPED)
            .group_by(Message.error)
            .order_by(func.count().desc())
        )
    ]


def at_the_cap(session: Session, candidate_ids: Any, timing: Any, now: datetime) -> dict[str, Any]:
    """How many of these candidates (a select of ids) the frequency cap would hold now, and
    when the first of them may be mailed again."""
    cap = timing.cap
    if cap is None:
        return {"held": 0, "until": None, "cap": None}
    recent = (
        select(Message.candidate_id, func.count().label("n"), func.min(Message.sent_at).label("t"))
        .where(
            Message.state == MessageState.SENT,
            Message.sent_at > now - cap.period,
            Message.candidate_id.in_(candidate_ids),
        )
        .group_by(Message.candidate_id)
        .having(func.count() >= cap.mails)
        .subquery()
    )
    held, oldest = session.execute(select(func.count(), func.min(recent.c.t))).one()
    oldest = _aware(oldest)
    return {"held": held or 0, "until": oldest + cap.period if oldest else None, "cap": cap}


@dataclass(frozen=True)
class Outlook:
    """What happens to an enrolment's next step that has a condition."""

    text: str  # "only if they open step 1 by …", "will be skipped: step 1 was never sent"
    doomed: bool  # the condition can no longer be met: the step will be skipped


CONDITION_WORDS = {
    "previous_opened": ("open", "opened"),
    "previous_clicked": ("click a link in", "clicked a link in"),
    "previous_not_opened": ("not open", "opened"),
}


def outlooks(session: Session, enrolments: list[Enrolment]) -> dict[int, Outlook]:
    """For active enrolments whose next step has a condition, whether it can still be met."""
    pending = []
    for enrolment in enrolments:
        if enrolment.status != EnrolmentStatus.ACTIVE:
            continue
        steps = enrolment.campaign.steps
        if 0 < enrolment.next_position < len(steps) and steps[enrolment.next_position].condition:
            pending.append(enrolment)
    if not pending:
        return {}
    previous = {
        (m.enrolment_id, m.step_id): m
        for m in session.scalars(
            select(Message).where(Message.enrolment_id.in_([e.id for e in pending]))
        )
    }
    message_ids = [m.id for m in previous.values()]
    happened = {
        (message_id, kind)
        for message_id, kind in session.execute(
            select(Event.message_id, Event.kind)
            .where(
                Event.message_id.in_(message_ids),
                Event.kind.in_([EventKind.OPEN, EventKind.CLICK]),
                Event.machine.is_(False),
            )
            .distinct()
        )
    }
    found = {}
    for enrolment in pending:
        steps = enrolment.campaign.steps
        step, before = steps[enrolment.next_position], steps[enrolment.next_position - 1]
        number, last = enrolment.next_position + 1, enrolment.next_position
        message = previous.get((enrolment.id, before.id))
        kind = EventKind.CLICK if step.condition == "previous_clicked" else EventKind.OPEN
        did = message is not None and (message.id, kind) in happened
        wants, past = CONDITION_WORDS.get(step.condition, ("", ""))
        if message is None or message.state in (MessageState.SKIPPED, MessageState.FAILED):
            if step.condition == "previous_not_opened":
                found[enrolment.id] = Outlook(
                    f"step {number} goes out: step {last} never reached them", False
                )
            else:
                why = f" ({message.error})" if message is not None and message.error else ""
                found[enrolment.id] = Outlook(
                    f"cannot be met: step {last} was never delivered{why}, so step {number} "
                    "will be skipped",
                    True,
                )
        elif step.condition == "previous_not_opened":
            found[enrolment.id] = (
                Outlook(
                    f"cannot be met: they {past} step {last}, so step {number} will be skipped",
                    True,
                )  # fmt: skip
                if did
                else Outlook(f"only if they do not open step {last} before it is due", False)
            )
        elif did:
            found[enrolment.id] = Outlook(f"condition met: they {past} step {last}", False)
        else:
            found[enrolment.id] = Outlook(
                f"only if they {wants} step {last} before it is due; otherwise skipped", False
            )
    return found
