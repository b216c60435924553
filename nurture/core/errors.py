"""Errors services raise for bad input; views turn them into 4xx answers."""

from __future__ import annotations


class ValidationError(Exception):
    """Input that cannot be accepted; ``fields`` maps each bad field to what is wrong with it."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(Exception):
    """A row that the caller named does not exist."""


class Conflict(Exception):
    """The request is well-formed but the current state forbids it."""
