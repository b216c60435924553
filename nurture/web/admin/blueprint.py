"""The admin blueprint: its features, its navigation and the template helpers every page uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app
from flask_login import current_user

from nurture.core.audience.engagement import score_of
from nurture.models import Role
from nurture.web.admin import (
    auth,
    broadcasts,
    campaigns,
    candidates,
    dashboard,
    email_templates,
    imports,
    mailbox,
    openings,
    promptness,
    referrals,
    replies,
    segments,
    suppressions,
    system,
    translations,
    users,
    webhooks,
)

bp = Blueprint("admin", __name__, template_folder="templates", static_folder="static")

# Each feature is a blueprint package with its own views, forms and templates; its URL prefix
# under /admin is set here, once.
for feature, prefix in (
    (auth, ""),
    (dashboard, ""),
    (candidates, "/candidates"),
    (campaigns, "/campaigns"),
    (broadcasts, "/broadcasts"),
    (segments, "/segments"),
    (openings, "/jobs"),
    (email_templates, "/templates"),
    (translations, "/templates/languages"),
    (imports, "/imports"),
    (suppressions, "/suppressions"),
    (mailbox, "/mailbox"),
    (system, "/system"),
    (users, ""),
    (replies, "/replies"),
    (referrals, "/referrals"),
    (promptness, "/promptness"),
    (webhooks, "/webhooks"),
):
    bp.register_blueprint(feature.bp, url_prefix=prefix)

# (endpoint, label, path prefix that marks it current, role needed)
NAV = [
    ("admin.dashboard.dashboard", "Dashboard", "/admin/", Role.VIEWER),
    ("admin.candidates.candidates", "Candidates", "/admin/candidates", Role.VIEWER),
    ("admin.replies.replies", "Replies", "/admin/replies", Role.VIEWER),
    ("admin.campaigns.campaigns", "Campaigns", "/admin/campaigns", Role.VIEWER),
    ("admin.broadcasts.broadcasts", "Broadcasts", "/admin/broadcasts", Role.VIEWER),
    ("admin.segments.segments", "Segments", "/admin/segments", Role.VIEWER),
    ("admin.openings.jobs", "Job alerts", "/admin/jobs", Role.VIEWER),
    ("admin.referrals.referrals", "Referrals", "/admin/referrals", Role.VIEWER),
    ("admin.promptness.promptness", "Promptness", "/admin/promptness", Role.VIEWER),
    ("admin.email_templates.templates", "Templates", "/admin/templates", Role.VIEWER),
    ("admin.imports.imports", "Imports", "/admin/imports", Role.EDITOR),
    ("admin.suppressions.suppressions", "Suppressions", "/admin/suppressions", Role.VIEWER),
    ("admin.mailbox.mailbox_list", "Mailbox", "/admin/mailbox", Role.EDITOR),
    ("admin.users.users", "Users & tokens", "/admin/users", Role.ADMIN),
    ("admin.system.system", "System", "/admin/system", Role.ADMIN),
    ("admin.webhooks.webhooks", "Webhooks", "/admin/webhooks", Role.ADMIN),
]


@bp.app_context_processor
def _helpers() -> dict:
    def admin_nav() -> list[tuple[str, str, str]]:
        views = current_app.view_functions
        return [
            (endpoint, label, prefix)
            for endpoint, label, prefix, role in NAV
            if endpoint in views and current_user.is_authenticated and current_user.has_role(role)
        ]

    def can(role: str) -> bool:
        return current_user.is_authenticated and current_user.has_role(role)

    return {"admin_nav": admin_nav, "can": can}


@bp.app_template_filter("delay")
def humanize_delay(seconds: int) -> str:
    """``259200`` → ``3 days``; the way a recruiter says a step's delay."""
    if not seconds:
        return "immediately"
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@bp.app_template_filter("score")
def engagement_score(candidate: Any) -> str:
    """A candidate's engagement score now, as ``2.45``."""
    return f"{score_of(candidate, current_app.extensions['nurture.clock'].now()):g}"


@bp.app_template_filter("percent")
def percent(part: int, whole: int) -> str:
    """A rate for a funnel: ``12.5%``, or an em dash when nothing was sent."""
    if not whole:
        return "—"
    return f"{100 * part / whole:.1f}%"


@bp.app_template_filter("iso")
def iso(value: datetime | None) -> str:
    """An ISO-8601 timestamp for ``<time datetime=…>``."""
    return value.isoformat() if value else ""
