"""Typed SQLAlchemy models, one module per aggregate."""

from nurture.models.base import Base
from nurture.models.campaigns import (
    AtsEvent,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Enrolment,
    EnrolmentStatus,
    EntryType,
    ExitRule,
    Reentry,
    Step,
    StepCondition,
)
from nurture.models.candidates import Candidate, CandidateStatus, Suppression, Tag, Topic
from nurture.models.imports import Import, ImportStatus
from nurture.models.messages import Event, EventKind, Message, MessageState
from nurture.models.openings import Opening, OpeningMatch
from nurture.models.segments import Segment
from nurture.models.templates import EmailTemplate
from nurture.models.users import ApiToken, Role, User

__all__ = [
    "ApiToken",
    "AtsEvent",
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
    "ExitRule",
    "Import",
    "ImportStatus",
    "OpeningMatch",
    "Opening",
    "Message",
    "MessageState",
    "Reentry",
    "Role",
    "Segment",
    "Step",
    "StepCondition",
    "Suppression",
    "Tag",
    "Topic",
    "User",
]
