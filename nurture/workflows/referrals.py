"""Referrals from the talent network, across audience, campaigns and compliance: a candidate
recommends someone through their signed link; the person joins with their consent (given by
the referrer, or asked for by mail) as a candidate with source "referral"; a hire thanks the
referrer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from nurture.core import addresses
from nurture.core.campaigns.enrolment import enrol
from nurture.core.compliance import erasure
from nurture.core.errors import ValidationError
from nurture.core.feedback.referrals import ANY_OPENING
from nurture.core.webhooks.events import candidate_ref, emit
from nurture.models import Topic
from nurture.models.campaigns import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    Step,
)
from nurture.models.candidates import Candidate, CandidateStatus
from nurture.models.messages import Message
from nurture.models.openings import Opening
from nurture.models.referrals import Referral, ReferralState
from nurture.workflows.candidates import add_tags, save_candidate

SOURCE = "referral"
TAG = "referred"
SYSTEM_TOPIC = "system"
CONSENT_CAMPAIGN = ("Referral consent request", "referral_consent")
THANKS_CAMPAIGN = ("Referral thank-you", "referral_thanks")
CONSENT_GIVEN = "given"
CONSENT_REQUESTED = "requested"
# Recommendations one referrer may make per day: each may send a mail to someone we never met,
# so a leaked link must not become a way to mail strangers in bulk.
DAILY_LIMIT = 10
RELATION_LENGTH = 100
NOTE_LENGTH = 2000


@dataclass(frozen=True)
class ReferralForm:
    """What a referrer tells us, checked."""

    email: str
    first_name: str
    last_name: str
    relation: str
    note: str
    consent: str  # CONSENT_GIVEN or CONSENT_REQUESTED
    opening_id: int | None


def validate_referral(data: dict[str, Any], referrer: Candidate) -> ReferralForm:
    """Check the referral form (or JSON body) field by field; ValidationError names each one."""
    errors: dict[str, str] = {}
    try:
        email = addresses.normalise_email(data.get("email"))
    except ValidationError as exc:
        errors.update(exc.fields)
        email = ""
    if email and email == referrer.email:
        errors["email"] = "that is your own address: who would you like to recommend?"
    names = {}
    for field in ("first_name", "last_name"):
        value = data.get(field) or ""
        if not isinstance(value, str):
            errors[field] = "must be text"
        elif len(value.strip()) > 100:
            errors[field] = "must be at most 100 characters"
        names[field] = value.strip() if isinstance(value, str) else ""
    if not names["first_name"] and "first_name" not in errors:
        errors["first_name"] = "is required, so we can greet them by name"
    relation = data.get("relation") or ""
    note = data.get("note") or ""
    if not isinstance(relation, str) or len(relation.strip()) > RELATION_LENGTH:
        errors["relation"] = f"must be at most {RELATION_LENGTH} characters"
    if not isinstance(note, str) or len(note.strip()) > NOTE_LENGTH:
        errors["note"] = f"must be at most {NOTE_LENGTH} characters"
    consent = data.get("consent")
    if consent not in (CONSENT_GIVEN, CONSENT_REQUESTED):
        errors["consent"] = "choose whether they agreed, or whether we should ask them first"
    opening_id = data.get("opening_id")
    if opening_id in (None, "", "0", 0):
        opening_id = None
    else:
        try:
            opening_id = int(opening_id)
        except (TypeError, ValueError):
            errors["opening_id"] = "is not one of our openings"
            opening_id = None
    if errors:
        raise ValidationError("some fields are not valid", errors)
    return ReferralForm(
        email, names["first_name"], names["last_name"], str(relation).strip(),
        str(note).strip(), str(consent), opening_id,
    )  # fmt: skip


def open_openings(session: Session, now: datetime, days: int = 180) -> list[Opening]:
    """The openings a referrer may choose from: those created in the last ``days`` days."""
    return list(
        session.scalars(
            select(Opening)
            .where(Opening.created_at >= now - timedelta(days=days))
            .order_by(Opening.created_at.desc(), Opening.id.desc())
            .limit(50)
        )
    )


def system_campaign(session: Session, name: str, template: str, now: datetime) -> Campaign:
    """One of the referral mails' campaigns, created active on first use (like re-consent)."""
    campaign = session.scalar(
        select(Campaign)
        .where(Campaign.name == name, Campaign.topic == SYSTEM_TOPIC)
        .order_by(Campaign.id)
        .limit(1)
    )
    if campaign is None:
        campaign = Campaign(
            name=name,
            kind=CampaignKind.DRIP,
            status=CampaignStatus.ACTIVE,
            entry_type=EntryType.MANUAL,
            topic=SYSTEM_TOPIC,
            exit_on=[],
            reentry="after_exit",
            description="Sent by nurture for a referral; pause it to stop these mails.",
            created_at=now,
            updated_at=now,
            # An answer to what someone just did (a referral): personal mail, which the
            # frequency cap never holds for a week.
            steps=[
                Step(
                    position=0,
                    delay_seconds=0,
                    delay="PT0S",
                    template=template,
                    category="personal",
                )
            ],
        )
        session.add(campaign)
        session.flush()
    return campaign


def _referred_data(referral: Referral, candidate: Candidate) -> dict[str, Any]:
    return {
        "referral_id": referral.id,
        "referrer": candidate_ref(candidate),
        "opening": {"id": referral.opening_id, "title": referral.opening_title},
        "relation": referral.relation,
        "note": referral.note,
        "campaign_id": referral.campaign_id,
    }


def refer(
    session: Session,
    referrer: Candidate,
    opening: Opening | None,
    message: Message | None,
    data: dict[str, Any],
    now: datetime,
) -> Referral:
    """Record a recommendation; the referred person joins (consent given) or is asked by mail.

    What the referrer is told does not depend on whether we knew the person already, or may not
    write to them: the page says thank you either way, so it reveals nothing about anyone.
    """
    form = validate_referral(data, referrer)
    today = session.scalar(
        select(func.count())
        .select_from(Referral)
        .where(Referral.referrer_id == referrer.id, Referral.created_at > now - timedelta(days=1))
    )
    if (today or 0) >= DAILY_LIMIT:
        raise ValidationError(
            "too many recommendations today",
            {"email": f"you have recommended {DAILY_LIMIT} people today, thank you! "
                      "Please come back tomorrow for more."},
        )  # fmt: skip
    if opening is None and form.opening_id is not None:
        opening = session.get(Opening, form.opening_id)
        if opening is None:
            raise ValidationError("no such opening", {"opening_id": "is not one of our openings"})
    referral = Referral(
        referrer_id=referrer.id,
        opening_id=opening.id if opening else None,
        opening_title=opening.title if opening else "",
        message_id=message.id if message else None,
        campaign_id=message.campaign_id if message else None,
        relation=form.relation,
        note=form.note,
        consent=form.consent,
        created_at=now,
    )
    session.add(referral)
    if addresses.suppression_reason(session, form.email):
        # They asked never to hear from us (or were erased): nothing about them is kept.
        referral.state = ReferralState.NOT_CONTACTABLE
        referral.note = referral.relation = ""
        session.flush()
        return referral
    existing = session.scalar(select(Candidate).where(Candidate.email == form.email))
    if existing is not None:
        referral.candidate_id = existing.id
        referral.state = ReferralState.KNOWN
        session.flush()
        emit(session, "candidate.referred", now, candidate=existing,
             data={**_referred_data(referral, referrer), "known": True})  # fmt: skip
        return referral
    person: dict[str, Any] = {
        "email": form.email,
        "first_name": form.first_name,
        "last_name": form.last_name,
        "source": SOURCE,
    }
    if form.consent == CONSENT_GIVEN:
        person["consent"] = {
            "basis": "consent",
            "source": f"referral by {referrer.email}: the referrer confirmed they agreed",
            "at": now.isoformat(),
        }
        person["tags"] = [TAG]
    candidate, _ = save_candidate(session, person, now, segments=form.consent == CONSENT_GIVEN)
    candidate.referred_by_id = referrer.id
    if referrer.recruiter_email and not candidate.recruiter_email:
        # The referrer's recruiter looks after the people they bring.
        candidate.recruiter_email = referrer.recruiter_email
        candidate.recruiter_name = referrer.recruiter_name
    referral.candidate_id = candidate.id
    session.flush()
    if form.consent == CONSENT_GIVEN:
        referral.state = ReferralState.IN_NETWORK
        referral.consented_at = now
        emit(session, "candidate.referred", now, candidate=candidate,
             data=_referred_data(referral, referrer))  # fmt: skip
        return referral
    # Until they say yes, no campaign may write to them: every topic is off, and the consent
    # request goes through a system campaign (the "system" topic is not one they can turn off).
    candidate.topics = {str(topic): False for topic in Topic}
    referral.state = ReferralState.AWAITING_CONSENT
    campaign = system_campaign(session, *CONSENT_CAMPAIGN, now)
    if campaign.status == CampaignStatus.ACTIVE:
        enrolment = enrol(session, candidate, campaign, now)
        referral.consent_enrolment_id = enrolment.id if enrolment else None
    session.flush()
    return referral


def confirm(session: Session, candidate: Candidate, referral: Referral, now: datetime) -> bool:
    """The referred person says yes: consent recorded, topics on, tagged, the ATS told."""
    if referral.state != ReferralState.AWAITING_CONSENT:
        return False
    candidate.consent_basis = "consent"
    candidate.consent_source = "referral: confirmed from the consent mail"
    candidate.consent_at = now
    candidate.topics = {}
    candidate.updated_at = now
    referral.state = ReferralState.IN_NETWORK
    referral.consented_at = now
    add_tags(session, candidate, TAG, now)
    referrer = session.get(Candidate, referral.referrer_id)
    emit(session, "candidate.referred", now, candidate=candidate,
         data=_referred_data(referral, referrer))  # fmt: skip
    return True


def decline(session: Session, candidate: Candidate, referral: Referral, now: datetime) -> bool:
    """The referred person says no (or never answered): erased, never written to again."""
    if referral.state != ReferralState.AWAITING_CONSENT:
        return False
    referral.state = ReferralState.DECLINED
    erasure.erase(session, candidate, now, notify=False)
    return True


def _thank(session: Session, referral: Referral, now: datetime) -> bool:
    """Enrol the referrer in the thank-you mail; False while an earlier one is still going."""
    referrer = session.get(Candidate, referral.referrer_id)
    if referrer is None or referrer.status != CandidateStatus.ACTIVE:
        referral.thanked_at = now  # nobody to thank (hired, unsubscribed, erased): done
        return False
    campaign = system_campaign(session, *THANKS_CAMPAIGN, now)
    if campaign.status != CampaignStatus.ACTIVE:
        return False
    running = session.scalar(
        select(Enrolment.id).where(
            Enrolment.candidate_id == referrer.id,
            Enrolment.campaign_id == campaign.id,
            Enrolment.status == EnrolmentStatus.ACTIVE,
        )
    )
    if running is not None:
        return False  # the referral pass thanks them once the earlier mail has gone
    enrolment = enrol(session, referrer, campaign, now)
    if enrolment is None:
        referral.thanked_at = now  # they may not be mailed: nothing more to do
        return False
    referral.thanks_enrolment_id = enrolment.id
    referral.thanked_at = now
    return True


def on_hired(session: Session, candidate: Candidate, now: datetime) -> int:
    """A referred candidate was hired: their referrals count as hires, the referrers are thanked."""
    referrals = session.scalars(
        select(Referral).where(
            Referral.candidate_id == candidate.id,
            Referral.state.in_(
                [ReferralState.IN_NETWORK, ReferralState.KNOWN, ReferralState.AWAITING_CONSENT]
            ),
        )
    ).all()
    thanked = 0
    for referral in referrals:
        referral.state = ReferralState.HIRED
        referral.hired_at = now
        thanked += _thank(session, referral, now)
    return thanked


@dataclass(frozen=True)
class PassReport:
    """What the periodic referral pass did."""

    expired: int
    thanked: int


def referral_pass(session: Session, now: datetime, consent_days: int = 30) -> PassReport:
    """Forget referred people who never said yes, and thank referrers whose turn has come."""
    expired = session.scalars(
        select(Referral)
        .where(
            Referral.state == ReferralState.AWAITING_CONSENT,
            Referral.created_at < now - timedelta(days=consent_days),
        )
        .limit(500)
    ).all()
    for referral in expired:
        candidate = session.get(Candidate, referral.candidate_id) if referral.candidate_id else None
        if candidate is not None:
            decline(session, candidate, referral, now)
        else:
            referral.state = ReferralState.DECLINED
    waiting = session.scalars(
        select(Referral)
        .where(and_(Referral.state == ReferralState.HIRED, Referral.thanked_at.is_(None)))
        .limit(500)
    ).all()
    thanked = sum(_thank(session, referral, now) for referral in waiting)
    return PassReport(len(expired), thanked)


def opening_label(opening: Opening | None) -> str:
    """How the page names the opening a link is for."""
    return opening.title if opening is not None else ANY_OPENING
