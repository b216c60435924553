"""ISO-8601 durations (``P3D``, ``PT30S``) as the delays between drip steps."""

from __future__ import annotations

from datetime import timedelta

import isodate

from nurture.core.errors import ValidationError


def parse_delay(value: str, field: str = "delay") -> timedelta:
    """Parse an ISO-8601 duration into a timedelta, refusing months and years."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f"{field} is required", {field: "give an ISO-8601 duration such as P3D or PT30S"}
        )
    try:
        parsed: timedelta | isodate.Duration = isodate.parse_duration(value.strip().upper())
    except (isodate.ISO8601Error, ValueError):
        raise ValidationError(
            f"{field} is not an ISO-8601 duration",
            {field: f"{value!r} is not an ISO-8601 duration; write e.g. P3D, PT12H or PT30S"},
        ) from None
    if isinstance(parsed, isodate.Duration):
        raise ValidationError(
            f"{field} uses months or years",
            {field: "months and years vary in length; use days instead, e.g. P90D"},
        )
    if parsed < timedelta(0):
        raise ValidationError(f"{field} is negative", {field: "a delay cannot be negative"})
    return parsed
