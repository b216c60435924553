"""JSON API views: parse, call one service, answer."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, jsonify
from sqlalchemy import select

from nurture import runtime
from nurture.core.audience.engagement import score_of
from nurture.core.audience.schemas import AtsEventIn, CandidateIn
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.schemas import CampaignIn
from nurture.core.compliance import erasure
from nurture.core.feedback.ratings import rating_summary
from nurture.extensions import db
from nurture.models import Campaign, Candidate, Enrolment, Event, Message, Role
from nurture.tasks.sending import template_library
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation
from nurture.workflows.ats import handle_ats_event
from nurture.workflows.candidates import save_candidate

log = logging.getLogger(__name__)


def _candidate_or_404(candidate_id: int) -> Candidate:
    candidate = db.session.get(Candidate, candidate_id)
    if candidate is None:
        raise ApiError(404, "not_found", f"no candidate {candidate_id}")
    return candidate


def _campaign_or_404(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise ApiError(404, "not_found", f"no campaign {campaign_id}")
    return campaign


def candidate_dict(candidate: Candidate) -> dict[str, Any]:
    """The API's view of a candidate."""
    return {
        "id": candidate.id,
        "email": candidate.email,
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "timezone": candidate.timezone,
        "language": candidate.language,
        "location": candidate.location,
        "role": candidate.role,
        "stage": candidate.stage,
        "rejection_reason": candidate.rejection_reason,
        "strengths": candidate.strengths,
        "skills": candidate.skills,
        "tags": candidate.tag_names,
        "source": candidate.source,
        "recruiter_name": candidate.recruiter_name,
        "recruiter_email": candidate.recruiter_email,
        "consent": {
            "basis": candidate.consent_basis,
            "source": candidate.consent_source,
            "at": candidate.consent_at.isoformat() if candidate.consent_at else None,
        },
        "status": candidate.status,
        # Pool health: when and why mailing stopped ("came back (...)" once they returned).
        "sunset": {
            "at": candidate.sunset_at.isoformat() if candidate.sunset_at else None,
            "reason": candidate.sunset_reason,
        },
        "engagement_score": score_of(candidate, runtime.now()),
    }


def templates() -> dict[str, Any]:
    """The validation context of a campaign: its steps' templates are compiled as it is read."""
    return {"library": template_library(current_app)}


@operation("POST", "/candidates", role=Role.EDITOR, body=CandidateIn, ok=(200, 201))
def create_candidate(body: CandidateIn):
    """Create a candidate (201), or update the one with the same email (200)."""
    candidate, created = save_candidate(db.session, body, runtime.now())
    db.session.commit()
    return jsonify(candidate_dict(candidate)), 201 if created else 200


@operation("GET", "/candidates/<int:candidate_id>", role=Role.VIEWER)
def get_candidate(candidate_id: int):
    """A candidate with enrolments and a timeline of messages and events."""
    candidate = _candidate_or_404(candidate_id)
    enrolments = db.session.scalars(
        select(Enrolment).where(Enrolment.candidate_id == candidate.id).order_by(Enrolment.id)
    )
    timeline: list[dict[str, Any]] = []
    for message in db.session.scalars(select(Message).where(Message.candidate_id == candidate.id)):
        timeline.append(
            {
                "type": f"message.{message.state}",
                "at": (message.sent_at or message.queued_at).isoformat(),
                "message_id": message.id,
                "campaign_id": message.campaign_id,
                "step_id": message.step_id,
                "subject": message.subject,
                "error": message.error,
            }
        )
    for event in db.session.scalars(select(Event).where(Event.candidate_id == candidate.id)):
        timeline.append(
            {
                "type": event.kind,
                "at": event.created_at.isoformat(),
                "message_id": event.message_id,
                "url": "" if event.url.startswith("mid:") else event.url,
                "value": event.value,
                "machine": event.machine,
            }
        )
    timeline.sort(key=lambda item: item["at"])
    body = candidate_dict(candidate)
    body["enrolments"] = [
        {
            "id": e.id,
            "campaign_id": e.campaign_id,
            "status": e.status,
            "next_position": e.next_position,
            "next_send_at": e.next_send_at.isoformat() if e.next_send_at else None,
            "exit_reason": e.exit_reason,
        }
        for e in enrolments
    ]
    body["timeline"] = timeline
    return jsonify(body)


@operation("DELETE", "/candidates/<int:candidate_id>", role=Role.ADMIN)
def erase_candidate(candidate_id: int):
    """Erase a candidate's personal data; the address stays only as a suppression hash."""
    candidate = _candidate_or_404(candidate_id)
    erasure.erase(db.session, candidate, runtime.now())
    db.session.commit()
    return jsonify({"id": candidate.id, "status": candidate.status})


@operation("POST", "/campaigns", role=Role.EDITOR, body=CampaignIn, ok=(201,), context=templates)
def create_campaign(body: CampaignIn):
    """Create a campaign (a draft) with its steps."""
    library = template_library(current_app)
    campaign = campaign_service.create_campaign(db.session, body, library, runtime.now())
    db.session.commit()
    return jsonify(campaign_service.campaign_dict(campaign)), 201


@operation("GET", "/campaigns/<int:campaign_id>", role=Role.VIEWER)
def get_campaign(campaign_id: int):
    """A campaign and its steps."""
    return jsonify(campaign_service.campaign_dict(_campaign_or_404(campaign_id)))


def _set_status(campaign_id: int, status: str):
    campaign = _campaign_or_404(campaign_id)
    campaign_service.set_status(db.session, campaign, status, runtime.now())
    db.session.commit()
    return jsonify(campaign_service.campaign_dict(campaign))


@operation("POST", "/campaigns/<int:campaign_id>/activate", role=Role.EDITOR, errors=(409,))
def activate_campaign(campaign_id: int):
    """Start (or resume) sending."""
    return _set_status(campaign_id, "active")


@operation("POST", "/campaigns/<int:campaign_id>/pause", role=Role.EDITOR, errors=(409,))
def pause_campaign(campaign_id: int):
    """Stop sending until activated again; nothing queued is lost."""
    return _set_status(campaign_id, "paused")


@operation("GET", "/campaigns/<int:campaign_id>/stats", role=Role.VIEWER)
def campaign_stats(campaign_id: int):
    """Per step: unique candidates sent, opened, clicked, unsubscribed, bounced, failed."""
    campaign = _campaign_or_404(campaign_id)
    ratings = rating_summary(db.session, campaign.id)
    return jsonify(
        {
            "campaign_id": campaign.id,
            "steps": campaign_service.campaign_stats(db.session, campaign),
            "ratings": {
                "count": ratings.count,
                "average": ratings.average,
                "distribution": {str(k): v for k, v in ratings.distribution.items()},
            },
        }
    )


# The ATS's candidate is reported by the candidate's own field names ("email"), as since v1.
@operation("POST", "/ats/events", signed="ATS_SECRET", body=AtsEventIn, flatten="candidate.")
def ats_event(body: AtsEventIn):
    """An event from the ATS, signed with HMAC-SHA256 of the raw body."""
    result = handle_ats_event(db.session, body, runtime.now())
    db.session.commit()
    ids = {"candidate_id": result["candidate_id"]}
    ids["campaign_ids"] = result.get("enrolled_campaign_ids", [])
    log.info("ats event", extra={"event_type": str(body.type), **ids})
    return jsonify(result), 200
