"""What feedback takes in over HTTP: bounces and complaints a provider reports (one report,
or a list of up to MAX_REPORTS); the API's referral, reply-inbox and promptness inputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, RootModel, TypeAdapter, model_validator

from nurture.core.feedback.inbound import MESSAGE_ID
from nurture.core.feedback.promptness import TARGET_RANGE
from nurture.core.inputs import Email, Id, Input, Matching, Text, problem
from nurture.models import ReferralState

MAX_REPORTS = 1000


class BounceReport(Input):
    """One address that bounced (hard or soft) or complained, with the mail it was about."""

    type: Literal["bounce", "complaint"]
    email: Email
    bounce_type: Literal["hard", "soft"] = "hard"
    message_id: (
        Annotated[
            str,
            Matching(
                MESSAGE_ID.pattern, "must be a Message-ID such as <abc@example.com>", max_length=998
            ),
        ]
        | None
    ) = None
    diagnostic: Annotated[str, Text(10_000)] = ""


_ONE = TypeAdapter(BounceReport)
_MANY = TypeAdapter(Annotated[list[BounceReport], Field(min_length=1, max_length=MAX_REPORTS)])


class BounceReports(
    RootModel[
        BounceReport | Annotated[list[BounceReport], Field(min_length=1, max_length=MAX_REPORTS)]
    ]
):
    """One report, or a list of them (errors name the item: ``[3].email``)."""

    @model_validator(mode="wrap")
    @classmethod
    def _one_or_many(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, cls):
            return data
        adapter = _MANY if isinstance(data, list) else _ONE
        return cls.model_construct(adapter.validate_python(data, strict=True))

    @property
    def reports(self) -> list[BounceReport]:
        """The reports, as a list."""
        return self.root if isinstance(self.root, list) else [self.root]

    @property
    def many(self) -> bool:
        """Whether a list was sent (and a list of results is answered)."""
        return isinstance(self.root, list)


# --- referrals, replies and rejection promptness over the API ----------------------------------


class ReferralStatsQuery(Input):
    """The window of the referral numbers: the last ``days`` days (90 by default)."""

    days: Annotated[int, Field(ge=1, le=3650)] = 90


class PromptnessQuery(Input):
    """The window of the promptness report: the last ``days`` days (30 by default)."""

    days: Annotated[int, Field(ge=1, le=3650)] = 30


class ReferralLinkIn(Input):
    """Whose referral page, and for which job opening (none: for any role)."""

    candidate_id: Id
    opening_id: Id | None = None


class ReferralsQuery(Input):
    """Which referrals the list shows: those in ``state``, or all."""

    state: ReferralState | None = None


class InboxQuery(Input):
    """Which replies the inbox shows: open ones (the default), handled ones, or all."""

    # ReplyState's values, and "all".
    state: Literal["open", "handled", "all"] = "open"

    @property
    def reply_state(self) -> str:
        """The state to narrow the inbox to, or "" for all."""
        return "" if self.state == "all" else self.state


def _within_target(hours: float) -> float:
    low, high = TARGET_RANGE
    if not low <= hours <= high:  # NaN too: it is in no range
        raise problem("range", f"must be between {low} and {high} hours")
    return hours


class TargetIn(Input):
    """The team's target from a rejection to the first mail, in hours."""

    hours: Annotated[
        float,
        Field(json_schema_extra={"minimum": TARGET_RANGE[0], "maximum": TARGET_RANGE[1]}),
        AfterValidator(_within_target),
    ]


class FeedbackQuery(Input):
    """Which feedback to show: one stage or rejection reason (``(not given)`` for none), and the
    last ``days`` days (all time when left out)."""

    stage: Annotated[str, Text(100)] | None = None
    rejection_reason: Annotated[str, Text(200)] | None = None
    days: Annotated[int, Field(ge=1, le=3650)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100
