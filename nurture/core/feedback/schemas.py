"""What feedback takes in over HTTP: bounces and complaints a provider reports (one report,
or a list of up to MAX_REPORTS)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, RootModel, TypeAdapter, model_validator

from nurture.core.feedback.inbound import MESSAGE_ID
from nurture.core.inputs import Email, Input, Matching, Text

MAX_REPORTS = 1000


class BounceReport(Input):
    """One address that bounced (hard or soft) or complained, with the mail it was about."""

    type: Literal["bounce", "complaint"]
    email: Email
    bounce_type: Literal["hard", "soft"] = "hard"
    message_id: (
        Matching(
            MESSAGE_ID.pattern, "must be a Message-ID such as <abc@example.com>", max_length=998
        )
        | None
    ) = None
    diagnostic: Text(10_000) = ""


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


class FeedbackQuery(Input):
    """Which feedback to show: one stage or rejection reason (``(not given)`` for none), and the
    last ``days`` days (all time when left out)."""

    stage: Text(100) | None = None
    rejection_reason: Text(200) | None = None
    days: Annotated[int, Field(ge=1, le=3650)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100
