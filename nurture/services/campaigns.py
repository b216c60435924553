"""Creating campaigns, changing their status, and counting what their steps achieved."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, distinct, func, select, update
from sqlalchemy.orm import Session

from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    EntryType,
    Event,
    EventKind,
    Message,
    MessageState,
    Step,
)
from nurture.services.candidates import normalise_email
from nurture.services.durations import parse_delay
from nurture.services.enrolment import enrol_tag_entrants
from nurture.services.errors import Conflict, ValidationError
from nurture.services.rendering import TemplateLibrary

ATS_EVENTS = ("candidate.rejected",)
CONDITIONS = ("", "previous_opened", "previous_not_opened", "previous_clicked")

# Which status changes are allowed, and from where.
TRANSITIONS = {
    CampaignStatus.ACTIVE: {CampaignStatus.DRAFT, CampaignStatus.PAUSED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE},
    CampaignStatus.ARCHIVED: {CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED},
}


def _entry(data: Any, errors: dict[str, str]) -> tuple[str, str]:
    if data is None:
        return EntryType.MANUAL, ""
    if not isinstance(data, dict) or len(data) != 1:
        errors["entry"] = "give one of segment_id, tag or ats_event"
        return EntryType.MANUAL, ""
    ((key, value),) = data.items()
    if key == "ats_event":
        if value not in ATS_EVENTS:
            errors["entry.ats_event"] = f"must be one of {', '.join(ATS_EVENTS)}"
        return EntryType.ATS_EVENT, str(value)
    if key == "tag":
        if not isinstance(value, str) or not value.strip():
            errors["entry.tag"] = "must be a tag name"
            return EntryType.TAG, ""
        return EntryType.TAG, value.strip().lower()
    if key == "segment_id":
        return EntryType.SEGMENT, str(value)
    errors["entry"] = f"unknown entry {key!r}; give one of segment_id, tag or ats_event"
    return EntryType.MANUAL, ""


def _steps(data: Any, library: TemplateLibrary, errors: dict[str, str]) -> list[Step]:
    if not isinstance(data, list) or not data:
        errors["steps"] = "a campaign needs a list of at least one step"
        return []
    steps = []
    for index, raw in enumerate(data):
        where = f"steps[{index}]"
        if not isinstance(raw, dict):
            errors[where] = "must be an object"
            continue
        step = Step(position=index, condition=str(raw.get("condition") or ""))
        try:
            delay = parse_delay(raw.get("delay", "PT0S"), f"{where}.delay")
            step.delay_seconds = int(delay.total_seconds())
            step.delay = str(raw.get("delay", "PT0S")).strip().upper()
        except ValidationError as exc:
            errors.update(exc.fields)
        if step.condition not in CONDITIONS:
            errors[f"{where}.condition"] = f"must be one of {', '.join(c for c in CONDITIONS if c)}"
        elif step.condition and index == 0:
            errors[f"{where}.condition"] = "the first step has no previous mail to look at"
        step.subject = str(raw.get("subject") or "")
        step.template = str(raw.get("template") or "")
        step.html = str(raw.get("html") or "")
        step.text = str(raw.get("text") or "")
        if bool(step.template) == bool(step.html):
            errors[f"{where}.template"] = "give either a template name or html"
        else:
            try:
                if step.template:
                    library.get(step.template, subject=step.subject)
                else:
                    library.compile(step.html, step.text or None, subject=step.subject)
            except ValidationError as exc:
                for field, problem in exc.fields.items():
                    errors[f"{where}.{field}"] = problem
        steps.append(step)
    return steps


def create_campaign(
    session: Session, data: dict[str, Any], library: TemplateLibrary, now: datetime
) -> Campaign:
    """Validate a campaign with its steps and store it as a draft."""
    errors: dict[str, str] = {}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "a campaign needs a name"
    kind = data.get("kind", CampaignKind.DRIP)
    if not isinstance(kind, str) or kind not in set(CampaignKind):
        errors["kind"] = f"must be one of {', '.join(CampaignKind)}"
    entry_type, entry_value = _entry(data.get("entry"), errors)
    steps = _steps(data.get("steps"), library, errors)
    sender = data.get("sender") or {}
    sender_name, sender_email = "", ""
    if not isinstance(sender, dict):
        errors["sender"] = "must be an object with name and email"
    else:
        sender_name = str(sender.get("name") or "")[:200]
        if sender.get("email"):
            try:
                sender_email = normalise_email(sender["email"], "sender.email")
            except ValidationError as exc:
                errors.update(exc.fields)
    send_window = data.get("send_window") or {}
    if not isinstance(send_window, dict):
        errors["send_window"] = "must be an object"
    if errors:
        raise ValidationError("the campaign is not valid", errors)
    campaign = Campaign(
        name=name.strip(),
        kind=kind,
        status=CampaignStatus.DRAFT,
        entry_type=entry_type,
        entry_value=entry_value,
        sender_name=sender_name,
        sender_email=sender_email,
        sender_is_recruiter=bool(sender.get("use_recruiter", True)),
        send_window=send_window,
        created_at=now,
        updated_at=now,
        steps=steps,
    )
    session.add(campaign)
    session.flush()
    return campaign


def set_status(session: Session, campaign: Campaign, status: str, now: datetime) -> Campaign:
    """Move a campaign to ``status`` if its current status allows it."""
    target = CampaignStatus(status)
    if campaign.status == target:
        return campaign
    if campaign.status not in TRANSITIONS.get(target, set()):
        raise Conflict(f"a {campaign.status} campaign cannot become {target}")
    if target == CampaignStatus.ACTIVE and not campaign.steps:
        raise Conflict("a campaign without steps cannot be activated")
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


def campaign_dict(campaign: Campaign) -> dict[str, Any]:
    """The API's view of a campaign."""
    entry: dict[str, Any] = {}
    if campaign.entry_type == EntryType.ATS_EVENT:
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
        "steps": [
            {
                "id": s.id,
                "position": s.position,
                "delay": s.delay,
                "subject": s.subject,
                "template": s.template,
                "html": s.html,
                "condition": s.condition,
            }
            for s in campaign.steps
        ],
    }
