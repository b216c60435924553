"""Admin page: the dashboard — the network's health, sends and opens, what needs attention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Blueprint, render_template, url_for
from sqlalchemy import select

from nurture import runtime
from nurture.core.campaigns import service as campaign_service
from nurture.core.delivery.circuit import read_status
from nurture.core.feedback import analytics
from nurture.core.feedback.ratings import rating_summary
from nurture.extensions import db
from nurture.models import Campaign, CampaignKind, Candidate, Role, Segment
from nurture.tasks import get_redis
from nurture.tasks.stores import RedisStore
from nurture.web.admin.access import role_required
from nurture.web.admin.promptness.views import dashboard_panel

bp = Blueprint("dashboard", __name__, template_folder="templates")


@bp.get("/")
@role_required(Role.VIEWER)
def dashboard():
    """The health of the network, sends and opens per day, and campaigns that need attention."""
    now = runtime.now()
    series = analytics.daily_series(db.session, now, 30)
    return render_template(
        "admin/dashboard.html",
        health=analytics.network_health(db.session, now),
        checklist=_checklist(),
        ratings=rating_summary(db.session, None, since=now - timedelta(days=90)),
        waiting=campaign_service.waiting(db.session, now),
        attention=analytics.campaigns_needing_attention(db.session, now),
        active=[
            row
            for row in analytics.campaign_overview(db.session, now, "active")
            if row["campaign"].kind == CampaignKind.DRIP
        ],
        # The SMTP circuit breaker's pause, when the relay keeps failing (None otherwise).
        relay_pause=read_status(RedisStore(get_redis())),
        promptness=dashboard_panel(),
        series_chart={
            "type": "line",
            "labels": [day["day"] for day in series],
            "series": [[name, [day[name] for day in series]] for name in ("sent", "opened")],
        },
    )


@dataclass(frozen=True)
class FirstStep:
    """One step of the first-run checklist."""

    what: str
    how: str
    done: bool
    href: str
    action: str


def _checklist() -> list[FirstStep]:
    """Import → segment → drip → newsletter: what a new team does first, and what is done."""

    def some(model: Any, *where: Any) -> bool:
        return db.session.scalar(select(model.id).where(*where).limit(1)) is not None

    return [
        FirstStep(
            "Import your candidates",
            "A CSV from your ATS: columns are mapped for you, every bad row is named.",
            some(Candidate),
            url_for("admin.imports.import_upload"),
            "Import a CSV",
        ),
        FirstStep(
            "Build a segment",
            "Say who you want to reach, e.g. silver medalists who reached the final interview.",
            some(Segment),
            url_for("admin.segments.new_segment"),
            "New segment",
        ),
        FirstStep(
            "Start a drip",
            "A personal follow-up after the rejection, then a few check-ins.",
            some(Campaign, Campaign.kind == CampaignKind.DRIP, Campaign.status == "active"),
            url_for("admin.campaigns.campaign_new"),
            "New drip",
        ),
        FirstStep(
            "Send a newsletter",
            "News from the team and open roles, to a tag or a segment.",
            some(Campaign, Campaign.kind == CampaignKind.BROADCAST),
            url_for("admin.broadcasts.broadcast_new"),
            "New broadcast",
        ),
    ]
