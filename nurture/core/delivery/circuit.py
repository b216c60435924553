"""A circuit breaker for the SMTP relay: stop hammering a relay that keeps failing, say why.

Closed: send. After ``threshold`` relay failures in a row it opens: nothing is tried until the
cooldown ends, and the reason is written where the admin dashboard reads it. After the cooldown
it is half-open: one trial send closes it on success, or opens it for another cooldown.

Each worker keeps its own count; the open state is shared through a small store (a Redis key),
so every worker pauses when one of them opened the breaker, and only the worker that claims the
trial sends it while the others wait. The store holds no mail data: losing it only means a
worker tries the relay once more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)

BREAKER_KEY = "nurture:smtp:breaker"
# How long the other workers wait for a trial send before one of them may claim it instead.
TRIAL_SECONDS = 60


class StateStore(Protocol):
    """Where the open breaker's state is kept for every worker and the dashboard."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any] | None) -> None: ...

    def claim_trial(self, name: str, seconds: int) -> bool: ...


class MemoryStore:
    """A store for one process (tests, or no Redis)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def load(self) -> dict[str, Any] | None:
        """The saved state."""
        return self.state

    def save(self, state: dict[str, Any] | None) -> None:
        """Keep ``state`` (None: closed)."""
        self.state = state

    def claim_trial(self, name: str, seconds: int) -> bool:
        """One process: its trial is always its own."""
        return True


@dataclass
class BreakerStatus:
    """The open breaker as the dashboard shows it."""

    reason: str
    since: datetime
    until: datetime
    failures: int


def _dump(reason: str, since: datetime, until: datetime, failures: int) -> dict[str, Any]:
    return {
        "state": "open",
        "reason": reason,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "failures": failures,
    }


def read_status(store: StateStore) -> BreakerStatus | None:
    """The open breaker's reason and times, or None when it is closed."""
    state = store.load()
    if not state or state.get("state") != "open":
        return None
    try:
        return BreakerStatus(
            reason=str(state.get("reason", "")),
            since=datetime.fromisoformat(state["since"]),
            until=datetime.fromisoformat(state["until"]),
            failures=int(state.get("failures", 0)),
        )
    except (KeyError, TypeError, ValueError):
        return None


class CircuitBreaker:
    """Counts relay failures in a row; opens at ``threshold`` for ``cooldown``."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: timedelta = timedelta(minutes=5),
        store: StateStore | None = None,
    ) -> None:
        if threshold < 1:
            raise ValueError("SMTP_BREAKER_THRESHOLD must be at least 1")
        self.threshold = threshold
        self.cooldown = cooldown
        self.store: StateStore = store if store is not None else MemoryStore()
        self.failures = 0
        self.status: BreakerStatus | None = None
        # The open period (its end) whose trial send this worker claimed.
        self._trial: datetime | None = None

    def sync(self) -> None:
        """Pick up what other workers decided (once per batch: one read of the store)."""
        shared = read_status(self.store)
        if shared is not None:
            self.status = shared
        elif self.status is not None:
            # Another worker's trial send closed it.
            self.status = None
            self.failures = 0

    def open_until(self, now: datetime) -> datetime | None:
        """When sending may resume, while the breaker is open; None when a send may be tried.

        Past the cooldown the breaker is half-open: the worker that claims the trial sends; the
        others wait a little for its outcome, which they pick up at their next ``sync``.
        """
        if self.status is None:
            return None
        if now < self.status.until:
            return self.status.until
        if self._trial == self.status.until:
            return None
        if self.store.claim_trial(self.status.until.isoformat(), TRIAL_SECONDS):
            self._trial = self.status.until
            return None
        return now + timedelta(seconds=min(TRIAL_SECONDS, self.cooldown.total_seconds()))

    @property
    def half_open(self) -> bool:
        """True while the next send is the trial after a cooldown."""
        return self.status is not None

    def success(self) -> None:
        """The relay took a message (or answered for the recipient): it works."""
        self.failures = 0
        if self.status is not None:
            log.info("SMTP relay works again: circuit breaker closed")
            self.status = None
            self.store.save(None)

    def failure(self, reason: str, now: datetime) -> bool:
        """Count a relay failure; returns True when this one opened the breaker."""
        self.failures += 1
        if self.status is None and self.failures < self.threshold:
            return False
        # The threshold reached, or the half-open trial failed: another cooldown.
        since = self.status.since if self.status is not None else now
        self.status = BreakerStatus(reason, since, now + self.cooldown, self.failures)
        self.store.save(_dump(reason, since, self.status.until, self.failures))
        log.warning(
            "SMTP relay failed %d times in a row (%s): pausing sends until %s",
            self.failures,
            reason,
            self.status.until.isoformat(),
        )
        return True
