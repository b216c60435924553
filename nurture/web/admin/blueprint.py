"""The admin blueprint, its navigation and the template helpers every admin page uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app
from flask_login import current_user

from nurture.models import Role
from nurture.core.audience.engagement import score_of

bp = Blueprint("admin", __name__, template_folder="templates", static_folder="static")

# (endpoint, label, path prefix that marks it current, role needed)
NAV = [
    ("admin.dashboard", "Dashboard", "/admin/", Role.VIEWER),
    ("admin.candidates", "Candidates", "/admin/candidates", Role.VIEWER),
    ("admin.campaigns", "Campaigns", "/admin/campaigns", Role.VIEWER),
    ("admin.broadcasts", "Broadcasts", "/admin/broadcasts", Role.VIEWER),
    ("admin.segments", "Segments", "/admin/segments", Role.VIEWER),
    ("admin.jobs", "Job alerts", "/admin/jobs", Role.VIEWER),
    ("admin.templates", "Templates", "/admin/templates", Role.VIEWER),
    ("admin.imports", "Imports", "/admin/imports", Role.EDITOR),
    ("admin.suppressions", "Suppressions", "/admin/suppressions", Role.VIEWER),
    ("admin.mailbox_list", "Mailbox", "/admin/mailbox", Role.VIEWER),
    ("admin.users", "Users & tokens", "/admin/users", Role.ADMIN),
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
    return f"{score_of(candidate, current_app.extensions['nurture.runtime'].now()):g}"


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
