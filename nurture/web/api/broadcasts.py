"""JSON API: broadcasts (newsletters) to a segment or a tag, now or at a scheduled time."""

from __future__ import annotations

from flask import current_app, jsonify

from nurture import runtime
from nurture.core.campaigns import broadcasts as broadcast_service
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.schemas import BroadcastIn
from nurture.extensions import db
from nurture.models import Campaign, CampaignKind, Role
from nurture.tasks.sending import template_library
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation


def _broadcast_or_404(broadcast_id: int) -> Campaign:
    campaign = db.session.get(Campaign, broadcast_id)
    if campaign is None or campaign.kind != CampaignKind.BROADCAST:
        raise ApiError(404, "not_found", f"no broadcast {broadcast_id}")
    return campaign


def _answer(campaign: Campaign) -> dict:
    body = campaign_service.campaign_dict(campaign)
    body["progress"] = broadcast_service.progress(db.session, campaign, runtime.now())
    return body


@operation("POST", "/broadcasts", role=Role.EDITOR, body=BroadcastIn, ok=(201,))
def create_broadcast(body: BroadcastIn):
    """Create a broadcast and schedule it (``"activate": false`` keeps it a draft)."""
    campaign = broadcast_service.create_broadcast(
        db.session, body, template_library(current_app), runtime.now()
    )
    db.session.commit()
    return jsonify(_answer(campaign)), 201


@operation("GET", "/broadcasts/<int:broadcast_id>", role=Role.VIEWER)
def get_broadcast(broadcast_id: int):
    """A broadcast and its progress: who is still waiting, and its messages by state."""
    return jsonify(_answer(_broadcast_or_404(broadcast_id)))
