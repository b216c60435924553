"""Referrals, the feedback side: the signed links in mail, what the mails about a referral say,
and the numbers (referrals per campaign, per referrer, hires from referrals) counted in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from nurture.core.tokens import BadToken, Tokens
from nurture.models.campaigns import Campaign, CampaignKind
from nurture.models.candidates import Candidate, CandidateStatus
from nurture.models.messages import Event, EventKind, Message
from nurture.models.openings import Opening
from nurture.models.referrals import Referral, ReferralState

ANY_OPENING = "one of our open roles"
# States in which the referred person is (or was) part of the network with their consent.
JOINED = (ReferralState.IN_NETWORK, ReferralState.HIRED)


@dataclass(frozen=True)
class LinkTarget:
    """Who a referral link belongs to, the opening it names, and the mail it came in."""

    referrer: Candidate
    opening: Opening | None
    message: Message | None


def link_target(session: Session, tokens: Tokens, token: str) -> LinkTarget:
    """The referrer (active or hired), opening and mail of a referral token, or BadToken."""
    payload = tokens.load("referral", token)
    if not (
        isinstance(payload, list)
        and len(payload) == 3
        and all(isinstance(part, int) for part in payload)
    ):
        raise BadToken("referral")
    candidate_id, opening_id, message_id = payload
    referrer = session.get(Candidate, candidate_id)
    if referrer is None or referrer.status == CandidateStatus.ERASED:
        raise BadToken("referral")
    message = session.get(Message, message_id) if message_id else None
    if message is not None and message.candidate_id != referrer.id:
        raise BadToken("referral")
    opening = session.get(Opening, opening_id) if opening_id else None
    return LinkTarget(referrer, opening, message)


def consent_target(session: Session, tokens: Tokens, token: str) -> tuple[Candidate, Referral]:
    """The referred person a consent link speaks for and their referral, or BadToken."""
    candidate_id = tokens.load("referral-consent", token)
    if not isinstance(candidate_id, int):
        raise BadToken("referral-consent")
    candidate = session.get(Candidate, candidate_id)
    referral = session.scalar(
        select(Referral)
        .where(Referral.candidate_id == candidate_id)
        .order_by(Referral.id.desc())
        .limit(1)
    )
    if candidate is None or referral is None:
        raise BadToken("referral-consent")
    return candidate, referral


def opening_of(session: Session, campaign: Campaign) -> tuple[int, str] | None:
    """The (id, title) of the opening a job-alert campaign announces, else None."""
    if campaign.kind != CampaignKind.JOB_ALERT:
        return None
    row = session.execute(
        select(Opening.id, Opening.title).where(Opening.campaign_id == campaign.id)
    ).first()
    return (row[0], row[1]) if row else None


def referral_context(
    session: Session,
    tokens: Tokens,
    candidate: Candidate,
    message_id: int | None,
    enrolment_id: int | None,
    opening: tuple[int, str] | None,
) -> dict[str, str]:
    """The ``referral`` variable of a mail: the candidate's own signed "know someone?" link, and
    for the mails about a referral (the consent request, the thank-you) who and what it was."""
    context = {
        "url": tokens.referral_url(candidate.id, opening[0] if opening else None, message_id),
        "opening": opening[1] if opening else ANY_OPENING,
        "referrer_name": "",
        "referred_name": "",
        "consent_url": tokens.referral_consent_url(candidate.id),
    }
    if enrolment_id is None:
        return context
    referral = session.scalar(
        select(Referral)
        .where(
            or_(
                Referral.consent_enrolment_id == enrolment_id,
                Referral.thanks_enrolment_id == enrolment_id,
            )
        )
        .limit(1)
    )
    if referral is None:
        return context
    referrer = session.get(Candidate, referral.referrer_id)
    referred = session.get(Candidate, referral.candidate_id) if referral.candidate_id else None
    context["opening"] = referral.opening_title or ANY_OPENING
    context["referrer_name"] = (referrer.full_name or "") if referrer else ""
    context["referred_name"] = (referred.first_name or referred.full_name) if referred else ""
    return context


# --- the numbers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """Referrals over a period."""

    clicks: int  # people who followed their referral link (human clicks only)
    referrals: int
    joined: int  # in the network with consent (or hired)
    awaiting: int
    hired: int

    def as_dict(self) -> dict[str, int]:
        """For the API."""
        return {
            "link_clicks": self.clicks,
            "referrals": self.referrals,
            "joined": self.joined,
            "awaiting_consent": self.awaiting,
            "hired": self.hired,
        }


def _counts() -> tuple[ColumnElement[Any], ...]:
    """The aggregate columns every breakdown shares."""
    return (
        func.count(Referral.id),
        func.sum(case((Referral.state.in_(JOINED), 1), else_=0)),
        func.sum(case((Referral.state == ReferralState.AWAITING_CONSENT, 1), else_=0)),
        func.sum(case((Referral.state == ReferralState.HIRED, 1), else_=0)),
    )


def _link_clicks(session: Session, since: datetime, base_url: str) -> dict[int | None, int]:
    """Candidates who clicked a referral link, per campaign (the link is wrapped by /c/)."""
    rows = session.execute(
        select(Message.campaign_id, func.count(func.distinct(Event.candidate_id)))
        .join(Message, Message.id == Event.message_id)
        .where(
            Event.kind == EventKind.CLICK,
            Event.machine.is_(False),
            Event.created_at >= since,
            Event.url.like(f"{base_url}/f/%"),
        )
        .group_by(Message.campaign_id)
    )
    return dict(rows.all())


def totals(session: Session, since: datetime, base_url: str) -> Totals:
    """Link clicks, referrals, joined, awaiting and hired since ``since``."""
    n, joined, awaiting, hired = tuple(
        session.execute(select(*_counts()).where(Referral.created_at >= since)).one()
    )
    clicks = sum(_link_clicks(session, since, base_url).values())
    return Totals(clicks, n or 0, int(joined or 0), int(awaiting or 0), int(hired or 0))


@dataclass(frozen=True)
class Breakdown:
    """One row of "per campaign" or "per referrer"."""

    key: int | None
    name: str
    detail: str
    clicks: int
    referrals: int
    joined: int
    hired: int

    def as_dict(self) -> dict[str, Any]:
        """For the API."""
        return {
            "id": self.key,
            "name": self.name,
            "link_clicks": self.clicks,
            "referrals": self.referrals,
            "joined": self.joined,
            "hired": self.hired,
        }


def per_campaign(session: Session, since: datetime, base_url: str) -> list[Breakdown]:
    """Referrals by the campaign whose mail carried the link (None: a link given by hand)."""
    rows = session.execute(
        select(Referral.campaign_id, Campaign.name, *_counts())
        .outerjoin(Campaign, Campaign.id == Referral.campaign_id)
        .where(Referral.created_at >= since)
        .group_by(Referral.campaign_id, Campaign.name)
    ).all()
    clicks = _link_clicks(session, since, base_url)
    found = {
        campaign_id: Breakdown(
            campaign_id,
            name or "Link shared directly",
            "",
            clicks.get(campaign_id, 0),
            n,
            int(joined or 0),
            int(hired or 0),
        )  # fmt: skip
        for campaign_id, name, n, joined, _awaiting, hired in rows
    }
    # Campaigns whose links were followed but brought no referral yet.
    names = dict(
        session.execute(
            select(Campaign.id, Campaign.name).where(
                Campaign.id.in_([c for c in clicks if c not in found])
            )
        ).all()
    )
    for campaign_id, name in names.items():
        found[campaign_id] = Breakdown(campaign_id, name, "", clicks[campaign_id], 0, 0, 0)
    return sorted(found.values(), key=lambda b: (-b.referrals, -b.clicks, b.name))


def per_referrer(session: Session, since: datetime, limit: int = 20) -> list[Breakdown]:
    """The candidates who recommended the most people (and the hires they brought)."""
    referrer = aliased(Candidate)
    rows = session.execute(
        select(referrer.id, referrer.first_name, referrer.last_name, referrer.email, *_counts())
        .join(referrer, referrer.id == Referral.referrer_id)
        .where(Referral.created_at >= since)
        .group_by(referrer.id, referrer.first_name, referrer.last_name, referrer.email)
        .order_by(
            func.sum(case((Referral.state == ReferralState.HIRED, 1), else_=0)).desc(),
            func.count(Referral.id).desc(),
            referrer.id,
        )
        .limit(limit)
    ).all()
    return [
        Breakdown(
            candidate_id,
            " ".join(p for p in (first, last) if p) or email,
            email,
            0,
            n,
            int(joined or 0),
            int(hired or 0),
        )  # fmt: skip
        for candidate_id, first, last, email, n, joined, _awaiting, hired in rows
    ]


def recent(
    session: Session, limit: int = 50, state: str = ""
) -> Sequence[Row[Referral, Candidate, Candidate, str]]:
    """The latest referrals with referrer, referred person and campaign names."""
    referrer = aliased(Candidate)
    referred = aliased(Candidate)
    query = (
        select(Referral, referrer, referred, Campaign.name.label("campaign"))
        .join(referrer, referrer.id == Referral.referrer_id)
        .outerjoin(referred, referred.id == Referral.candidate_id)
        .outerjoin(Campaign, Campaign.id == Referral.campaign_id)
    )
    if state:
        query = query.where(Referral.state == state)
    return session.execute(
        query.order_by(Referral.created_at.desc(), Referral.id.desc()).limit(limit)
    ).all()


def referral_dict(referral: Referral) -> dict[str, Any]:
    """The API's view of a referral."""
    return {
        "id": referral.id,
        "referrer_id": referral.referrer_id,
        "candidate_id": referral.candidate_id,
        "opening_id": referral.opening_id,
        "opening": referral.opening_title,
        "campaign_id": referral.campaign_id,
        "message_id": referral.message_id,
        "consent": referral.consent,
        "state": referral.state,
        "created_at": referral.created_at.isoformat(),
        "consented_at": referral.consented_at.isoformat() if referral.consented_at else None,
        "hired_at": referral.hired_at.isoformat() if referral.hired_at else None,
        "thanked_at": referral.thanked_at.isoformat() if referral.thanked_at else None,
    }
