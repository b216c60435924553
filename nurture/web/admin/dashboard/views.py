"""Admin page: the dashboard — the network's health, sends and opens, what needs attention."""

from __future__ import annotations

from flask import Blueprint, render_template

from nurture import runtime
from nurture.core.delivery.circuit import read_status
from nurture.core.feedback import analytics
from nurture.extensions import db
from nurture.models import Role
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
        attention=analytics.campaigns_needing_attention(db.session, now),
        active=analytics.campaign_overview(db.session, now, "active"),
        # The SMTP circuit breaker's pause, when the relay keeps failing (None otherwise).
        relay_pause=read_status(RedisStore(get_redis())),
        promptness=dashboard_panel(),
        series_chart={
            "type": "line",
            "labels": [day["day"] for day in series],
            "series": [[name, [day[name] for day in series]] for name in ("sent", "opened")],
        },
    )
