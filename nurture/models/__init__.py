"""Typed SQLAlchemy models, one module per aggregate."""

from nurture.models.base import Base
from nurture.models.campaigns import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    Step,
)
from nurture.models.candidates import Candidate, CandidateStatus, Suppression, Tag
from nurture.models.imports import ImportJob, ImportStatus
from nurture.models.messages import Event, EventKind, Message, MessageState
from nurture.models.openings import JobMatch, JobOpening
from nurture.models.segments import Segment, Stage
from nurture.models.templates import EmailTemplate, TemplateVersion
from nurture.models.users import ApiToken, Role, User

__all__ = [
    "ApiToken",
    "Base",
    "Campaign",
    "CampaignKind",
    "CampaignStatus",
    "Candidate",
    "CandidateStatus",
    "Enrolment",
    "EmailTemplate",
    "EnrolmentStatus",
    "EntryType",
    "Event",
    "EventKind",
    "ImportJob",
    "ImportStatus",
    "JobMatch",
    "JobOpening",
    "Message",
    "MessageState",
    "Role",
    "Segment",
    "Stage",
    "Step",
    "Suppression",
    "Tag",
    "TemplateVersion",
    "User",
]
