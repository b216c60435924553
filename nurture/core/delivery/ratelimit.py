"""Rate limits for sending: per SMTP relay and per recipient domain.

Rates are physical (the relay and the big mailbox providers count real seconds), so the buckets
run on a monotonic clock, not the injected business clock; tests pass their own time function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger(__name__)

Seconds = Callable[[], float]


class Bucket(Protocol):
    """Something that hands out sending slots."""

    def take(self) -> float:
        """Take one slot: 0.0 when taken, else the seconds until one frees up (nothing taken)."""
        ...


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst`` (one second's worth by default)."""

    def __init__(
        self, rate: float, burst: float | None = None, now: Seconds = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._now = now
        self._tokens = self.burst
        self._at = now()

    def take(self) -> float:
        """Take one token: 0.0 when taken, else the seconds until one is there (nothing taken)."""
        now = self._now()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0 - 1e-9:  # float dust must not cost a whole wait
            self._tokens = max(self._tokens - 1.0, 0.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


class RateLimiter:
    """The relay's budget and each recipient domain's; unlimited where no rate is set.

    ``domain_rates`` maps a domain (``"gmail.com"``) to mails per second; the key ``"*"`` gives
    every other domain a budget of its own at that rate.
    """

    def __init__(
        self,
        relay_rate: float = 0,
        domain_rates: Mapping[str, float] | None = None,
        *,
        bucket: Callable[[str, float], Bucket] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 1.0,
    ) -> None:
        self._bucket = bucket or (lambda _name, rate: TokenBucket(rate))
        self._sleep = sleep
        self.max_wait = max_wait
        self.domain_rates = {k.lower(): float(v) for k, v in (domain_rates or {}).items()}
        for domain, rate in self.domain_rates.items():
            if rate <= 0:
                raise ValueError(f"SMTP_DOMAIN_RATES[{domain!r}] must be a positive rate")
        self.relay = self._bucket("relay", float(relay_rate)) if relay_rate > 0 else None
        self._domains: dict[str, Bucket] = {}

    def domain_wait(self, address: str) -> float:
        """Take a slot for the address's domain: 0.0 to send now, else seconds to defer it."""
        domain = address.rpartition("@")[2].lower()
        bucket = self._domains.get(domain)
        if bucket is None:
            rate = self.domain_rates.get(domain, self.domain_rates.get("*"))
            if rate is None:
                return 0.0
            bucket = self._domains[domain] = self._bucket(f"domain:{domain}", rate)
        return bucket.take()

    def wait_for_relay(self) -> None:
        """Block until the relay has a slot: waits are short (a fraction of a second)."""
        if self.relay is None:
            return
        while (wait := self.relay.take()) > 0:
            self._sleep(min(wait, self.max_wait))
