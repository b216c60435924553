"""The admin blueprint: its features, its navigation and the template helpers every page uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from nurture.core.audience.engagement import score_of
from nurture.core.campaigns.timing import describe_hold, parse_cap
from nurture.extensions import db
from nurture.models import Role
from nurture.web.admin import (
    abtests,
    auth,
    broadcasts,
    campaigns,
    candidates,
    dashboard,
    email_templates,
    feedback,
    imports,
    mailbox,
    openings,
    pool,
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
    (feedback, "/feedback"),
    (pool, "/pool"),
    (abtests, "/ab-tests"),
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
    ("admin.feedback.feedback", "Feedback", "/admin/feedback", Role.VIEWER),
    ("admin.pool.pool", "Pool health", "/admin/pool", Role.VIEWER),
    ("admin.abtests.ab_tests", "A/B tests", "/admin/ab-tests", Role.VIEWER),
    ("admin.email_templates.templates", "Templates", "/admin/templates", Role.VIEWER),
    ("admin.imports.imports", "Imports", "/admin/imports", Role.EDITOR),
    ("admin.suppressions.suppressions", "Suppressions", "/admin/suppressions", Role.VIEWER),
    ("admin.mailbox.mailbox_list", "Mailbox", "/admin/mailbox", Role.EDITOR),
    ("admin.users.users", "Users & tokens", "/admin/users", Role.ADMIN),
    ("admin.system.system", "System", "/admin/system", Role.ADMIN),
    ("admin.webhooks.webhooks", "Webhooks", "/admin/webhooks", Role.ADMIN),
]


# What a missing page under each section was, and where its list is.
_SECTIONS = {
    "campaigns": ("campaign", "admin.campaigns.campaigns", "All campaigns"),
    "broadcasts": ("broadcast", "admin.broadcasts.broadcasts", "All broadcasts"),
    "candidates": ("candidate", "admin.candidates.candidates", "All candidates"),
    "segments": ("segment", "admin.segments.segments", "All segments"),
    "jobs": ("job opening", "admin.openings.jobs", "All job alerts"),
    "templates": ("template", "admin.email_templates.templates", "All templates"),
    "imports": ("import", "admin.imports.imports", "All imports"),
}
_TITLES = {
    400: ("This did not go through", ""),
    403: ("You cannot do this here", "Your role does not allow it. An admin can change roles."),
    404: ("This page does not exist", "The link may be old, or what it pointed at was deleted."),
    405: ("This page does not take that", "Go back and use the page's own buttons."),
    500: (
        "Something went wrong on our side",
        "Nothing you did caused this, and no mail was sent because of it. Try again in a "
        "moment; if it keeps happening, the logs name the problem.",
    ),
}


# The candidates' pages, reached from their mail (web/public).
PUBLIC_PATHS = ("/o/", "/c/", "/u/", "/p/", "/r/", "/k/")


def _company() -> str:
    return current_app.config.get("COMPANY_NAME", "")


def _error_page(exc: HTTPException):
    """Admin errors as a page of the admin; the API's stay JSON, the candidates' pages have
    their own; anything else as the framework says it."""
    code = exc.code or 500
    if code >= 500:
        db.session.rollback()
    if request.path.startswith(PUBLIC_PATHS):
        page = render_template(
            "tracking/error.html", code=code, company=_company(), detail=exc.description
        )
        return page, code
    if not request.path.startswith("/admin"):
        # The API answers every error as JSON: hand it to the handler it registered.
        handler = current_app.error_handler_spec.get(None, {}).get(None, {}).get(HTTPException)
        return handler(exc) if handler is not None else exc
    title, message = _TITLES.get(code, (exc.name, ""))
    # What went wrong in this very request (a missing CSRF token, say) says it best.
    if code == 400 and exc.description:
        message = exc.description
    links = [("Dashboard", url_for("admin.dashboard.dashboard"))]
    parts = request.path.strip("/").split("/")
    section = _SECTIONS.get(parts[1] if len(parts) > 1 else "")
    if code == 404 and section is not None:
        noun, endpoint, label = section
        number = next((p for p in parts[2:] if p.isdigit()), None)
        if number is not None:
            title = f"There is no {noun} #{number}"
            message = f"It may have been deleted, or the link is mistyped. {label} are listed here."
        links.insert(0, (label, url_for(endpoint)))
    return render_template(
        "admin/error.html", code=code, title=title, message=message, links=links
    ), code


for _code in (400, 403, 404, 405, 500):
    bp.app_errorhandler(_code)(_error_page)


@bp.app_context_processor
def _helpers() -> dict:
    def admin_nav() -> list[tuple[str, str, str]]:
        views = current_app.view_functions
        return [
            (endpoint, label, prefix)
            for endpoint, label, prefix, role in NAV
            if endpoint in views and current_user.is_authenticated and current_user.has_role(role)
        ]

    return {"admin_nav": admin_nav, "can": can}


# Globals rather than context: the shared macros (imported without context) use them too.
@bp.app_template_global()
def can(role: str) -> bool:
    """Whether the signed-in user's role is at least ``role``."""
    return current_user.is_authenticated and current_user.has_role(role)


@bp.app_template_global()
def hold_reason(reason: str) -> str:
    """Why a queued mail waits, as a recruiter reads it."""
    return describe_hold(reason or "", cap=parse_cap(current_app.config.get("FREQUENCY_CAP")))


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


@bp.app_template_filter("sentence")
def sentence(text: str) -> str:
    """The first letter in capitals and the rest as written (Jinja's ``capitalize`` lowers the
    rest, and with it names, quotes and SMTP replies)."""
    text = str(text or "")
    return text[:1].upper() + text[1:]


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
