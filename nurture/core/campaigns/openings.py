"""Job alerts: match a job opening to past candidates, let a recruiter review, then send once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    Select,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import Text

from nurture.core.addresses import normalise_email, suppressed_among
from nurture.core.audience.engagement import score_column
from nurture.core.campaigns import service as campaign_service
from nurture.core.campaigns.enrolment import enrol_all
from nurture.core.campaigns.schemas import OpeningIn
from nurture.core.compliance.preferences import topic_allows
from nurture.core.errors import Conflict, NotFound, ValidationError
from nurture.core.inputs import parse
from nurture.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    CandidateStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    Message,
    MessageState,
    Step,
    Topic,
)
from nurture.models.openings import Opening, OpeningMatch

TEMPLATE = "job_alert"
INVALID = "the job opening is not valid"

# Points out of 100: skills overlap is the main signal, the rest breaks ties between equals.
SKILLS_POINTS = 60.0
ROLE_POINTS = 15.0
CITY_POINTS = 15.0
REGION_POINTS = 8.0
REMOTE_POINTS = 10.0
ENGAGEMENT_POINTS = 4.0
# Furthest stage reached, by the words recruiters write in `stage`: first match wins.
STAGES = (
    (("offer",), 6.0),
    (("final",), 5.0),
    (("onsite", "on-site", "on site"), 4.0),
    (("technical", "interview", "assessment", "case study", "portfolio", "take-home"), 3.0),
    (("screen",), 1.0),
)
# Words a candidate's role may say instead of the job's role family.
FAMILY_WORDS = {
    "engineering": ("engineer", "developer", "programmer"),
    "software": ("engineer", "developer", "programmer"),
    "backend": ("back-end", "back end", "server", "platform", "api"),
    "frontend": ("front-end", "front end", "ui engineer", "web developer", "javascript"),
    "fullstack": ("full-stack", "full stack"),
    "data": ("analyst", "analytics", "machine learning", "ml ", "scientist", "bi "),
    "devops": ("sre", "site reliability", "infrastructure", "platform", "cloud"),
    "design": ("designer", "ux", "ui/ux", "product design"),
    "product": ("product manager", "product owner", "pm "),
    "sales": ("account executive", "business development", "sdr", "bdr"),
    "marketing": ("marketer", "growth", "content", "seo"),
    "recruiting": ("recruiter", "talent", "sourcer"),
    "security": ("appsec", "infosec", "penetration", "soc "),
    "support": ("customer success", "helpdesk", "service desk"),
}


# --- creating a job opening -----------------------------------------------------------------------


def create_opening(session: Session, data: OpeningIn | Any, now: datetime) -> Opening:
    """Validate and store a job opening (no matches yet)."""
    given = data if isinstance(data, OpeningIn) else parse(OpeningIn, data, message=INVALID)
    job = Opening(**given.model_dump(), created_at=now)
    session.add(job)
    session.flush()
    return job


def open_for_review(session: Session, data: OpeningIn | Any, now: datetime) -> tuple[Opening, int]:
    """Create a job opening and store its ranked matches for review; returns it and the count."""
    job = create_opening(session, data, now)
    return job, save_matches(session, job, find_matches(session, job, now), now)


# --- matching -------------------------------------------------------------------------------------


@dataclass
class Proposal:
    """A candidate proposed for a job, with the score and the reasons a recruiter reads."""

    candidate_id: int
    score: float
    reasons: list[str]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _skill_elements(session: Session) -> TableValuedAlias:
    """The candidate's skills as rows of a column named ``value``."""
    if _dialect(session) == "postgresql":
        return func.jsonb_array_elements_text(Candidate.skills).table_valued("value")
    return func.json_each(Candidate.skills).table_valued("value")


def _shares_a_skill(session: Session, skills: list[str]) -> ColumnElement[bool]:
    if _dialect(session) == "postgresql":
        return Candidate.skills.op("?|")(cast(skills, ARRAY(Text)))
    elements = _skill_elements(session)
    return exists(select(1).select_from(elements).where(elements.c.value.in_(skills)))


def _overlap(session: Session, skills: list[str]) -> ColumnElement[int]:
    elements = _skill_elements(session)
    return (
        select(func.count())
        .select_from(elements)
        .where(elements.c.value.in_(skills))
        .scalar_subquery()
    )


def eligible(session: Session, now: datetime) -> ColumnElement[bool]:
    """Who may get a job alert now: active, not paused, not opted out of job alerts."""
    return and_(
        Candidate.status == CandidateStatus.ACTIVE,
        or_(Candidate.paused_until.is_(None), Candidate.paused_until <= now),
        topic_allows(Topic.JOB_ALERTS),
    )


def family_terms(family: str) -> list[str]:
    """The words a candidate's role may contain to count as the job's role family."""
    family = family.strip().lower()
    if not family:
        return []
    terms = {family, family.replace("-", " "), family.replace(" ", "-"), family.replace("-", "")}
    terms.update(FAMILY_WORDS.get(family.replace("-", "").replace(" ", ""), ()))
    if family.endswith("ing") and len(family) > 6:
        terms.add(family[:-3])  # engineering → engineer
    return sorted(t for t in terms if t.strip())


def _place(location: str) -> tuple[str, str]:
    """(city, region) of a location written as "City, Region" (either may be "")."""
    parts = [p.strip() for p in location.split(",") if p.strip()]
    if not parts:
        return "", ""
    return parts[0], parts[-1] if len(parts) > 1 else ""


def _contains(column: Any, term: str) -> ColumnElement[bool]:
    return func.lower(column).contains(term.lower(), autoescape=True)


def _score_columns(session: Session, job: Opening, now: datetime) -> dict[str, ColumnElement[Any]]:
    """The parts of the score, as SQL over the candidates table."""
    skills = list(job.skills)
    terms = family_terms(job.role_family)
    role = (
        case((or_(*[_contains(Candidate.role, t) for t in terms]), ROLE_POINTS), else_=0.0)
        if terms
        else literal(0.0)
    )
    city, region = _place(job.location)
    place_cases = []
    if city:
        place_cases.append((_contains(Candidate.location, city), CITY_POINTS))
    if region and region.lower() != city.lower():
        place_cases.append((_contains(Candidate.location, region), REGION_POINTS))
    if job.remote:
        place: ColumnElement[Any] = literal(REMOTE_POINTS)
        if place_cases:
            place = case(*place_cases, else_=REMOTE_POINTS)
    else:
        place = case(*place_cases, else_=0.0) if place_cases else literal(0.0)
    stage = case(
        *[
            (or_(*[_contains(Candidate.stage, word) for word in words]), points)
            for words, points in STAGES
        ],
        else_=0.0,
    )
    engaged = score_column(now)
    positive = case((engaged > 0, engaged), else_=0.0)
    engagement = ENGAGEMENT_POINTS * positive / (positive + 10.0)  # saturates: 10 → half
    overlap = _overlap(session, skills)
    total = cast(overlap, Float) * (SKILLS_POINTS / len(skills)) + role + place + stage + engagement
    return {
        "overlap": overlap, "role": role, "place": place, "stage": stage, "engagement": engaged,
        "score": total,
    }  # fmt: skip


def _reasons(job: Opening, row: Any) -> list[str]:
    """Why a candidate matched, in the words a recruiter reads."""
    wanted = list(job.skills)
    shared = [s for s in wanted if s in set(row.skills or [])]
    reasons = [f"{len(shared)} of {len(wanted)} skills: {', '.join(shared)}"] if shared else []
    if row.role_points:
        reasons.append(f"role: {row.role} ({job.role_family})")
    place = _place_reason(job, row)
    if place:
        reasons.append(place)
    if row.stage_points >= 3:
        reasons.append(f"reached {row.stage.strip().lower()}")
    if row.engagement_score and row.engagement_score >= 1:
        reasons.append(f"engaged with our mail (score {row.engagement_score:.0f})")
    return reasons


def _place_reason(job: Opening, row: Any) -> str:
    """Why the candidate's place fits the job's, or ""."""
    city, region = _place(job.location)
    if row.place_points == CITY_POINTS and city:
        return f"same city: {city}"
    if row.place_points == REGION_POINTS and region:
        return f"same region: {region}"
    if row.place_points and job.remote:
        return "remote role" + (f" (lives in {row.location})" if row.location else "")
    return ""


def _ranked(
    session: Session, job: Opening, where: list[ColumnElement[bool]], now: datetime
) -> Select[Any]:
    parts = _score_columns(session, job, now)
    return (
        select(
            Candidate.id,
            Candidate.email,
            Candidate.skills,
            Candidate.role,
            Candidate.location,
            Candidate.stage,
            parts["engagement"].label("engagement_score"),
            parts["role"].label("role_points"),
            parts["place"].label("place_points"),
            parts["stage"].label("stage_points"),
            parts["score"].label("score"),
        )
        .where(*where)
        .order_by(literal_column("score").desc(), Candidate.id)
    )


def find_matches(session: Session, job: Opening, now: datetime, limit: int = 500) -> list[Proposal]:
    """Past candidates who share a skill with the job and may be mailed, best first."""
    query = _ranked(
        session, job, [_shares_a_skill(session, list(job.skills)), eligible(session, now)], now
    )
    proposals: list[Proposal] = []
    offset = 0
    while len(proposals) < limit:
        rows = session.execute(query.offset(offset).limit(limit)).all()
        if not rows:
            break
        offset += len(rows)
        # Suppressed addresses almost always have a non-active status too; this is the rest.
        blocked = suppressed_among(session, [row.email for row in rows])
        for row in rows:
            if row.email not in blocked and len(proposals) < limit:
                proposals.append(Proposal(row.id, round(float(row.score), 1), _reasons(job, row)))
        if len(rows) < limit:
            break
    return proposals


def save_matches(session: Session, job: Opening, proposals: list[Proposal], now: datetime) -> int:
    """Store proposals for review in one multi-row INSERT; returns how many."""
    if not proposals:
        return 0
    session.execute(
        insert(OpeningMatch),
        [
            {
                "opening_id": job.id,
                "candidate_id": p.candidate_id,
                "score": p.score,
                "reasons": p.reasons,
                "excluded": False,
                "created_at": now,
            }
            for p in proposals
        ],
    )
    return len(proposals)


# --- review ---------------------------------------------------------------------------------------


def opening_or_404(session: Session, job_id: int) -> Opening:
    """The job opening, or NotFound."""
    job = session.get(Opening, job_id)
    if job is None:
        raise NotFound(f"no job opening {job_id}")
    return job


def _match(session: Session, job: Opening, candidate_id: int) -> OpeningMatch:
    match = session.scalar(
        select(OpeningMatch).where(
            OpeningMatch.opening_id == job.id, OpeningMatch.candidate_id == candidate_id
        )
    )
    if match is None:
        raise NotFound(f"candidate {candidate_id} is not on the list for job {job.id}")
    return match


def set_excluded(
    session: Session, job: Opening, candidate_id: int, excluded: bool, now: datetime
) -> OpeningMatch:
    """Remove a candidate from the list (or put them back); a removed one is never mailed."""
    match = _match(session, job, candidate_id)
    match.excluded = excluded
    if excluded and job.campaign_id is not None:
        # Already approved but not mailed yet: the sending path skips an ended enrolment.
        session.execute(
            update(Enrolment)
            .where(
                Enrolment.campaign_id == job.campaign_id,
                Enrolment.candidate_id == candidate_id,
                Enrolment.status == EnrolmentStatus.ACTIVE,
            )
            .values(
                status=EnrolmentStatus.EXITED,
                exit_reason="removed from job alert",
                next_send_at=None,
                ended_at=now,
            )
        )
    return match


def add_candidate(session: Session, job: Opening, email: Any, now: datetime) -> OpeningMatch:
    """Add someone to the list by email; they must exist and want job alerts."""
    address = normalise_email(email)
    query = _ranked(session, job, [Candidate.email == address], now)
    row = session.execute(query).first()
    if row is None:
        raise ValidationError(
            "no such candidate", {"email": f"no candidate has the address {address}"}
        )
    allowed = session.scalar(select(eligible(session, now)).where(Candidate.id == row.id))
    if not allowed or suppressed_among(session, [row.email]):
        raise ValidationError(
            "this candidate cannot get job alerts",
            {
                "email": "this candidate cannot be mailed job alerts (opted out, paused, "
                "unsubscribed, hired or suppressed)"
            },
        )
    match = session.scalar(
        select(OpeningMatch).where(
            OpeningMatch.opening_id == job.id, OpeningMatch.candidate_id == row.id
        )
    )
    if match is not None:
        match.excluded = False
        return match
    match = OpeningMatch(
        opening_id=job.id,
        candidate_id=row.id,
        score=round(float(row.score), 1),
        reasons=[*_reasons(job, row), "added by a recruiter"],
        excluded=False,
        created_at=now,
    )
    session.add(match)
    session.flush()
    return match


def review_list(session: Session, job: Opening) -> list[Any]:
    """The ranked list with who each candidate is, whether they are enrolled, and their state."""
    enrolled = (
        select(Enrolment.status)
        .where(
            Enrolment.campaign_id == job.campaign_id,
            Enrolment.candidate_id == OpeningMatch.candidate_id,
        )
        .order_by(Enrolment.id.desc())
        .limit(1)
        .scalar_subquery()
        if job.campaign_id is not None
        else literal(None, Text)
    )
    return list(
        session.execute(
            select(
                OpeningMatch,
                Candidate.email,
                Candidate.first_name,
                Candidate.last_name,
                Candidate.role,
                Candidate.location,
                Candidate.stage,
                enrolled.label("enrolment_status"),
            )
            .join(Candidate, Candidate.id == OpeningMatch.candidate_id)
            .where(OpeningMatch.opening_id == job.id)
            .order_by(OpeningMatch.excluded, OpeningMatch.score.desc(), OpeningMatch.candidate_id)
        ).all()
    )


def _to_enrol(session: Session, job: Opening, campaign_id: int, now: datetime) -> Select[int]:
    """Reviewed, kept, still-eligible matches who were never enrolled in this alert."""
    return (
        select(OpeningMatch.candidate_id)
        .join(Candidate, Candidate.id == OpeningMatch.candidate_id)
        .where(
            OpeningMatch.opening_id == job.id,
            OpeningMatch.excluded.is_(False),
            eligible(session, now),
            # Any earlier enrolment, finished or not: a second approval mails nobody twice.
            ~exists().where(
                Enrolment.campaign_id == campaign_id,
                Enrolment.candidate_id == OpeningMatch.candidate_id,
            ),
        )
    )


def pending_ids(session: Session, job: Opening, now: datetime) -> Select[int]:
    """SELECT the ids of the candidates approving now would mail."""
    return _to_enrol(session, job, job.campaign_id or 0, now)


def job_shown(job: Opening) -> dict[str, str]:
    """The ``job`` a job-alert mail shows for this opening (before its campaign exists too)."""
    where = job.location
    if job.remote:
        where = f"{where} or remote" if where else "Remote"
    return {"title": job.title, "location": where, "url": job.url, "summary": job.summary}


def pending_count(session: Session, job: Opening, now: datetime) -> int:
    """How many candidates approving now would mail."""
    query = _to_enrol(session, job, job.campaign_id or 0, now)
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def summary(session: Session, job: Opening, now: datetime) -> dict[str, Any]:
    """Counts for the review page and the API: proposed, removed, to send, enrolled, sent."""
    counts = dict(
        session.execute(
            select(OpeningMatch.excluded, func.count())
            .where(OpeningMatch.opening_id == job.id)
            .group_by(OpeningMatch.excluded)
        ).all()
    )
    enrolled = sent = 0
    if job.campaign_id is not None:
        enrolled = (
            session.scalar(
                select(func.count())
                .select_from(Enrolment)
                .where(Enrolment.campaign_id == job.campaign_id)
            )
            or 0
        )
        sent = (
            session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.campaign_id == job.campaign_id, Message.state == MessageState.SENT)
            )
            or 0
        )
    return {
        "matches": counts.get(False, 0) + counts.get(True, 0),
        "excluded": counts.get(True, 0),
        "pending": pending_count(session, job, now),
        "enrolled": enrolled,
        "sent": sent,
    }


# --- approval -------------------------------------------------------------------------------------


def _campaign_for(session: Session, job: Opening, now: datetime) -> Campaign:
    campaign = session.get(Campaign, job.campaign_id) if job.campaign_id else None
    if campaign is not None:
        return campaign
    campaign = Campaign(
        name=f"Job alert: {job.title}"[:200],
        kind=CampaignKind.JOB_ALERT,
        status=CampaignStatus.DRAFT,
        entry_type=EntryType.MANUAL,
        entry_value="",
        topic=Topic.JOB_ALERTS,
        description=f"Alert for job opening #{job.id}, sent to the reviewed list.",
        created_at=now,
        updated_at=now,
        steps=[Step(position=0, delay_seconds=0, delay="PT0S", template=TEMPLATE)],
    )
    session.add(campaign)
    session.flush()
    job.campaign_id = campaign.id
    return campaign


def approve(session: Session, job: Opening, now: datetime) -> int:
    """Send the alert to the reviewed list: enrol every kept, eligible match once; returns count.

    The scheduler turns the enrolments into mail; the sending path checks each candidate again.
    """
    campaign = _campaign_for(session, job, now)
    if campaign.status == CampaignStatus.ARCHIVED:
        raise Conflict("this job alert's campaign is archived; it sends no more mail")
    if campaign.status != CampaignStatus.ACTIVE:
        campaign_service.set_status(session, campaign, CampaignStatus.ACTIVE, now)
    return enrol_all(session, campaign.id, _to_enrol(session, job, campaign.id, now), now, now)


def opening_context(session: Session, campaign: Campaign) -> dict[str, str] | None:
    """The ``job`` a job-alert mail shows, or None for other campaigns."""
    if campaign.kind != CampaignKind.JOB_ALERT:
        return None
    job = session.scalar(select(Opening).where(Opening.campaign_id == campaign.id))
    return None if job is None else job_shown(job)


def opening_dict(job: Opening) -> dict[str, Any]:
    """The API's view of a job opening."""
    return {
        "id": job.id,
        "title": job.title,
        "role_family": job.role_family,
        "skills": list(job.skills),
        "location": job.location,
        "remote": job.remote,
        "url": job.url,
        "summary": job.summary,
        "campaign_id": job.campaign_id,
        "created_at": job.created_at.isoformat(),
    }
