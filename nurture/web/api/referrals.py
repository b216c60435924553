"""JSON API: referrals — a candidate's signed referral link, the referrals made, their numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, jsonify, request

from nurture import runtime
from nurture.core.errors import ValidationError
from nurture.core.feedback import referrals as referral_service
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Opening, ReferralState, Role
from nurture.web.api.auth import ApiError, requires
from nurture.web.api.routes import bp
from nurture.web.api.views_compat import _json_body

# --- input, checked apart from the routes (so it can move to pydantic models whole) -----------


def parse_days(args: Any, default: int = 90) -> int:
    """``?days=`` as a whole number of days from 1 to 3650."""
    raw = args.get("days", default)
    try:
        days = int(raw)
    except (TypeError, ValueError):
        raise ValidationError("days is not valid", {"days": "must be a whole number"}) from None
    if not 1 <= days <= 3650:
        raise ValidationError("days is out of range", {"days": "must be between 1 and 3650"})
    return days


def parse_link_request(body: dict[str, Any]) -> tuple[int, int | None]:
    """``{"candidate_id": int, "opening_id": int | null}``."""
    errors = {}
    candidate_id = body.get("candidate_id")
    if not isinstance(candidate_id, int) or isinstance(candidate_id, bool):
        errors["candidate_id"] = "must be the id of a candidate"
    opening_id = body.get("opening_id")
    if opening_id is not None and (not isinstance(opening_id, int) or isinstance(opening_id, bool)):
        errors["opening_id"] = "must be the id of a job opening, or null for any role"
    if errors:
        raise ValidationError("some fields are not valid", errors)
    return candidate_id, opening_id


def parse_state(args: Any) -> str:
    """``?state=`` as a referral state, or "" for all."""
    state = args.get("state", "")
    if state and state not in set(ReferralState):
        known = ", ".join(ReferralState)
        raise ValidationError("state is not valid", {"state": f"must be one of {known}"})
    return state


# --- routes ------------------------------------------------------------------------------------


@bp.post("/referrals/links")
@requires(Role.EDITOR)
def referral_link():
    """The signed referral page of a candidate, for an opening or for any role."""
    candidate_id, opening_id = parse_link_request(_json_body())
    candidate = db.session.get(Candidate, candidate_id)
    if candidate is None:
        raise ApiError(404, "not_found", f"no candidate {candidate_id}")
    if opening_id is not None and db.session.get(Opening, opening_id) is None:
        raise ApiError(404, "not_found", f"no job opening {opening_id}")
    url = Tokens.from_config(current_app.config).referral_url(candidate.id, opening_id, None)
    return jsonify({"candidate_id": candidate.id, "opening_id": opening_id, "url": url})


@bp.get("/referrals")
@requires(Role.VIEWER)
def list_referrals():
    """The latest referrals (``?state=``), newest first."""
    rows = referral_service.recent(db.session, limit=200, state=parse_state(request.args))
    return jsonify({"referrals": [referral_service.referral_dict(row[0]) for row in rows]})


@bp.get("/referrals/stats")
@requires(Role.VIEWER)
def referral_stats():
    """Referrals per campaign, per referrer, and hires from referrals over ``?days=`` (90)."""
    days = parse_days(request.args)
    since = runtime.now() - timedelta(days=days)
    base_url = current_app.config["BASE_URL"].rstrip("/")
    return jsonify(
        {
            "days": days,
            "totals": referral_service.totals(db.session, since, base_url).as_dict(),
            "campaigns": [
                b.as_dict() for b in referral_service.per_campaign(db.session, since, base_url)
            ],
            "referrers": [b.as_dict() for b in referral_service.per_referrer(db.session, since)],
        }
    )
