"""Typed SQLAlchemy models, one module per aggregate."""

from nurture.models.ats import AtsEvent
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
from nurture.models.referrals import Referral, ReferralState
from nurture.models.replies import ForwardState, Reply, ReplyState
from nurture.models.segments import Segment
from nurture.models.settings import TeamSetting
from nurture.models.templates import EmailTemplate
from nurture.models.users import ApiToken, LoginThrottle, Role, User
from nurture.models.webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiToken",
    "AtsEvent",
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
    "ForwardState",
    "ImportJob",
    "ImportStatus",
    "JobMatch",
    "JobOpening",
    "LoginThrottle",
    "Message",
    "MessageState",
    "Referral",
    "ReferralState",
    "Reply",
    "ReplyState",
    "Role",
    "Segment",
    "Step",
    "Suppression",
    "Tag",
    "TeamSetting",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
]
