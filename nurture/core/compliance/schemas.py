"""What compliance takes in: addresses to suppress (an import from another tool), and the
address whose suppression is looked up."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from nurture.core.compliance.suppressions import DEFAULT_REASON, MAX_ADDRESSES, Reason
from nurture.core.inputs import Email, Input, problem


def _strings(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise problem("emails", "must be a list of strings")
    return value


def _some(value: list[str]) -> list[str]:
    if not any(e.strip() for e in value):
        raise problem("emails", "give at least one address")
    return value


class SuppressionsIn(Input):
    """Addresses to suppress, one a string; bad ones are reported by line, the others land."""

    emails: Annotated[
        list[Annotated[str, Field(max_length=1000)]],
        BeforeValidator(_strings),
        AfterValidator(_some),
        Field(min_length=1, max_length=MAX_ADDRESSES),
    ]
    reason: Reason = Field(default=DEFAULT_REASON)


class SuppressionQuery(Input):
    """The address to look up."""

    email: Email
