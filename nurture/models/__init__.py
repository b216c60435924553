"""Typed SQLAlchemy models, one module per aggregate."""

from nurture.models.ats import AtsEvent
from nurture.models.base import Base
from nurture.models.campaigns import (
    AtsEventType,
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
from nurture.models.messages import Event, EventKind, Message, MessageState, WorkerHeartbeat
from nurture.models.openings import Opening, OpeningMatch
from nurture.models.referrals import Referral, ReferralState
from nurture.models.replies import ForwardState, Reply, ReplyState
from nurture.models.segments import Segment
from nurture.models.settings import TeamSetting
from nurture.models.templates import EmailTemplate, TemplateTranslation
from nurture.models.users import ApiToken, LoginThrottle, Role, User
from nurture.models.webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiToken",
    "AtsEvent",
    "AtsEventType",
    "Base",
    "Campaign",
    "CampaignKind",
    "CampaignStatus",
    "Candidate",
    "CandidateStatus",
    "DeliveryState",
    "Enrolment",
    "EmailTemplate",
    "EnrolmentStatus",
    "EntryType",
    "Event",
    "EventKind",
    "ExitRule",
    "ForwardState",
    "Import",
    "ImportStatus",
    "LoginThrottle",
    "Message",
    "MessageState",
    "Opening",
    "OpeningMatch",
    "Reentry",
    "Referral",
    "ReferralState",
    "Reply",
    "ReplyState",
    "Role",
    "Segment",
    "Step",
    "StepCondition",
    "Suppression",
    "Tag",
    "TeamSetting",
    "TemplateTranslation",
    "Topic",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkerHeartbeat",
]
