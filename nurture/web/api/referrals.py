"""JSON API: referrals — a candidate's signed referral link, the referrals made, their numbers."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, jsonify

from nurture import runtime
from nurture.core.feedback import referrals as referral_service
from nurture.core.feedback.schemas import ReferralLinkIn, ReferralsQuery, ReferralStatsQuery
from nurture.core.tokens import Tokens
from nurture.extensions import db
from nurture.models import Candidate, Opening, Role
from nurture.web.api.auth import ApiError
from nurture.web.api.routes import operation


@operation("POST", "/referrals/links", role=Role.EDITOR, body=ReferralLinkIn, errors=(404,))
def referral_link(body: ReferralLinkIn):
    """The signed referral page of a candidate, for an opening or for any role."""
    candidate = db.session.get(Candidate, body.candidate_id)
    if candidate is None:
        raise ApiError(404, "not_found", f"no candidate {body.candidate_id}")
    if body.opening_id is not None and db.session.get(Opening, body.opening_id) is None:
        raise ApiError(404, "not_found", f"no job opening {body.opening_id}")
    url = Tokens.from_config(current_app.config).referral_url(candidate.id, body.opening_id, None)
    return jsonify({"candidate_id": candidate.id, "opening_id": body.opening_id, "url": url})


@operation("GET", "/referrals", role=Role.VIEWER, query=ReferralsQuery)
def list_referrals(query: ReferralsQuery):
    """The latest referrals (``?state=``), newest first."""
    rows = referral_service.recent(db.session, limit=200, state=query.state or "")
    return jsonify({"referrals": [referral_service.referral_dict(row[0]) for row in rows]})


@operation("GET", "/referrals/stats", role=Role.VIEWER, query=ReferralStatsQuery)
def referral_stats(query: ReferralStatsQuery):
    """Referrals per campaign, per referrer, and hires from referrals over ``?days=`` (90)."""
    since = runtime.now() - timedelta(days=query.days)
    base_url = current_app.config["BASE_URL"].rstrip("/")
    return jsonify(
        {
            "days": query.days,
            "totals": referral_service.totals(db.session, since, base_url).as_dict(),
            "campaigns": [
                b.as_dict() for b in referral_service.per_campaign(db.session, since, base_url)
            ],
            "referrers": [b.as_dict() for b in referral_service.per_referrer(db.session, since)],
        }
    )
