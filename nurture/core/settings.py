"""The deployment settings business rules read, handed to core by the app instead of imported.

Core never imports Flask: ``create_app`` installs a provider that answers with the running
app's configuration, and without one (a plain unit test) the settings are empty, so a check
that needs them fails closed rather than passing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_EMPTY: Mapping[str, Any] = {}
_provider: Callable[[], Mapping[str, Any]] = lambda: _EMPTY  # noqa: E731


def install(provider: Callable[[], Mapping[str, Any]]) -> None:
    """Make ``provider`` the source of :func:`current` (the app factory does this)."""
    global _provider
    _provider = provider


def current() -> Mapping[str, Any]:
    """The settings of the app at work now (its ``NURTURE_*`` configuration), or an empty map."""
    return _provider()
