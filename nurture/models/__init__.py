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
    StepVariant,
)
from nurture.models.candidates import Candidate, CandidateStatus, Suppression, Tag, Topic
from nurture.models.feedback import FeedbackAnswer
from nurture.models.imports import Import, ImportStatus
from nurture.models.messages import (
    HELD_FOR_AB_WINNER,
    HELD_FOR_STRENGTHS,
    Event,
    EventKind,
    Message,
    MessageState,
    WorkerHeartbeat,
)
from nurture.models.openings import Opening, OpeningMatch
from nurture.models.pool import PoolSnapshot
from nurture.models.referrals import Referral, ReferralState
from nurture.models.replies import ForwardState, Reply, ReplyState
from nurture.models.segments import Segment, Stage
from nurture.models.settings import TeamSetting
from nurture.models.templates import EmailTemplate, TemplateTranslation, TemplateVersion
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
    "FeedbackAnswer",
    "ForwardState",
    "HELD_FOR_AB_WINNER",
    "HELD_FOR_STRENGTHS",
    "Import",
    "ImportStatus",
    "LoginThrottle",
    "Message",
    "MessageState",
    "Opening",
    "OpeningMatch",
    "PoolSnapshot",
    "Reentry",
    "Referral",
    "ReferralState",
    "Reply",
    "ReplyState",
    "Role",
    "Segment",
    "Stage",
    "Step",
    "StepCondition",
    "StepVariant",
    "Suppression",
    "Tag",
    "TeamSetting",
    "TemplateVersion",
    "TemplateTranslation",
    "Topic",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkerHeartbeat",
]
