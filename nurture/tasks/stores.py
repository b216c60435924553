"""What workers share through Redis besides job ids: the circuit breaker's open state and the
rate-limit windows. Nothing in here is mail data: losing it only means one more try of the relay.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from nurture.core.delivery.circuit import BREAKER_KEY
from nurture.core.delivery.ratelimit import Bucket, Seconds, TokenBucket

log = logging.getLogger(__name__)


class RedisStore:
    """The state as a JSON value under one Redis key; a missing Redis reads as closed."""

    def __init__(self, redis: Redis, key: str = BREAKER_KEY) -> None:
        self.redis, self.key = redis, key
        self._warned = False

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None."""
        try:
            raw = self.redis.get(self.key)
        except RedisError as exc:
            self._warn(exc)
            return None
        if not raw:
            return None
        try:
            state = json.loads(raw)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def save(self, state: dict[str, Any] | None) -> None:
        """Write ``state``, or delete the key when None."""
        try:
            if state is None:
                self.redis.delete(self.key)
            else:
                self.redis.set(self.key, json.dumps(state))
        except RedisError as exc:
            self._warn(exc)

    def claim_trial(self, name: str, seconds: int) -> bool:
        """True for the one worker that gets to make the trial send ``name`` (SET NX)."""
        try:
            return bool(self.redis.set(f"{self.key}:trial:{name}", 1, nx=True, ex=seconds))
        except RedisError as exc:
            self._warn(exc)
            return True  # alone, as without Redis

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("circuit breaker state not shared: Redis unavailable (%s)", exc)
            self._warned = True


class RedisWindow:
    """A budget shared by every worker: ``rate`` slots per wall-clock window of Redis counters.

    The window is one second, or longer for rates under one a second (0.2/s: one per 5 s).
    Redis only counts (one key per window, expiring on its own); losing it loses no mail, at
    worst one window's worth of rate.
    """

    def __init__(self, redis: Redis, key: str, rate: float, now: Seconds = time.time) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.redis, self.key, self.rate, self._now = redis, key, rate, now
        self.window = max(1.0, 1.0 / rate)
        self.limit = rate * self.window
        # Without Redis, each worker keeps to the rate on its own rather than not at all.
        self._local = TokenBucket(rate)
        self._warned = False

    def take(self) -> float:
        """Count one send in this window: 0.0 when within the rate, else seconds to the next."""
        now = self._now()
        index = math.floor(now / self.window)
        key = f"{self.key}:{index}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, math.ceil(self.window) + 1)
            count = pipe.execute()[0]
        except RedisError as exc:
            if not self._warned:
                log.warning("rate %s: Redis unavailable (%s), limiting locally", self.key, exc)
                self._warned = True
            return self._local.take()
        if count <= self.limit + 1e-9:
            return 0.0
        return max((index + 1) * self.window - now, 0.001)


def redis_buckets(redis: Redis, prefix: str = "nurture:rate") -> Callable[[str, float], Bucket]:
    """Bucket factory whose budgets are shared through Redis by all workers of a relay."""

    def make(name: str, rate: float) -> Bucket:
        return RedisWindow(redis, f"{prefix}:{name}", rate)

    return make
