"""Creating campaigns, changing their status, and counting what their steps achieved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, distinct, func, select, update
from sqlalchemy.orm import Session

from nurture.core import settings as core_settings
from nurture.core.campaigns.enrolment import count_tag_entrants, enrol_tag_entrants
from nurture.core.campaigns.schemas import CampaignIn
from nurture.core.compliance.identity import require_sender_identity
from nurture.core.content.rendering import TemplateLibrary
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
from nurture.models.base import MAX_ID

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
    kinds = {kind: name for name, kind in STAT_EVENTS.items()}
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
        "steps": [
            {
                "id": s.id,
                "position": s.position,
                "delay": s.delay,
                "subject": s.subject,
                "template": s.template,
                "html": s.html,
                "condition": s.condition,
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
    edited = list(session.scalars(select(EmailTemplate.name).order_by(EmailTemplate.name)))
    return {"library": [n for n in library.names() if n not in edited], "edited": edited}


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
        "template": raw.get("template") or "",
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
    # Send window, topic and re-entry go to the API's own checks as they are.
    for key in ("send_window", "topic", "reentry"):
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
        for key in ("send_window", "topic", "reentry", "entry_filter"):
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
    It may have ``send_window``, ``topic``, ``reentry`` and ``entry_filter`` as in the API (the
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
        for name in ("delay", "delay_seconds", "template", "subject", "html", "text", "condition"):
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


def status_change_impact(session: Session, campaign: Campaign, action: str) -> dict[str, Any]:
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
    entering = 0
    if action in ("activate", "resume"):
        entering = count_tag_entrants(session, campaign)
    return {
        "action": action,
        "problem": action_problem(campaign, action),
        "entering": entering,
        "active_enrolments": active or 0,
        "queued_messages": queued or 0,
    }


def archive_campaign(session: Session, campaign: Campaign, now: datetime) -> int:
    """Archive a campaign: active enrolments exit ("archived") and its queued mail is dropped."""
    set_status(session, campaign, CampaignStatus.ARCHIVED, now)
    ended = session.execute(
        update(Enrolment)
        .where(Enrolment.campaign_id == campaign.id, Enrolment.status == EnrolmentStatus.ACTIVE)
        .values(
            status=EnrolmentStatus.EXITED, exit_reason="archived", next_send_at=None, ended_at=now
        )
    ).rowcount
    # Claims only take mail of active campaigns, so these would otherwise wait forever.
    session.execute(
        update(Message)
        .where(Message.campaign_id == campaign.id, Message.state == MessageState.QUEUED)
        .values(state=MessageState.SKIPPED, error="campaign archived")
    )
    return ended or 0


def apply_action(session: Session, campaign: Campaign, action: str, now: datetime) -> Campaign:
    """Activate, pause, resume or archive a campaign; Conflict when its status does not allow it."""
    problem = action_problem(campaign, action)
    if problem:
        raise Conflict(problem)
    if action == "archive":
        archive_campaign(session, campaign, now)
    else:
        set_status(session, campaign, ACTIONS[action][1], now)
    return campaign


def enrolments_page(
    session: Session, campaign: Campaign, page: int, per_page: int = 25
) -> tuple[list[Any], int]:
    """One page of a campaign's enrolments, newest first, with who they are; and the total."""
    total = session.scalar(
        select(func.count()).select_from(Enrolment).where(Enrolment.campaign_id == campaign.id)
    )
    rows = session.execute(
        select(
            Enrolment,
            Candidate.first_name,
            Candidate.last_name,
            Candidate.email,
            Candidate.status.label("candidate_status"),
        )
        .join(Candidate, Candidate.id == Enrolment.candidate_id)
        .where(Enrolment.campaign_id == campaign.id)
        .order_by(Enrolment.created_at.desc(), Enrolment.id.desc())
        .offset((max(page, 1) - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total or 0
