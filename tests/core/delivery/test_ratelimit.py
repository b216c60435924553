"""Rate limits: token-bucket arithmetic, per-domain budgets, and the Redis-shared window."""

from __future__ import annotations

import pytest
from redis import Redis

from nurture.core.delivery.ratelimit import RateLimiter, TokenBucket
from nurture.tasks.stores import RedisWindow, redis_buckets


class FakeTime:
    """A monotonic clock the test moves; ``sleep`` moves it too and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_bucket_allows_a_burst_then_one_token_per_interval() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10, now=t)
    assert [bucket.take() for _ in range(10)] == [0.0] * 10  # one second's worth at once
    assert bucket.take() == pytest.approx(0.1)  # the 11th waits a tenth of a second
    assert bucket.take() == pytest.approx(0.1)  # a refusal takes nothing
    t.now += 0.05
    assert bucket.take() == pytest.approx(0.05)
    t.now += 0.05
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.1)


def test_a_bucket_never_saves_up_more_than_its_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=2, burst=3, now=t)
    t.now += 3600  # an idle hour
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)


def test_a_slow_rate_waits_whole_seconds() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=0.5, now=t)  # one mail every two seconds
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(2.0)
    t.now += 2
    assert bucket.take() == 0.0


def test_sustained_rate_matches_the_setting() -> None:
    """Over 10 simulated seconds a 50/s relay lets through its burst (50) and 50 × 10 more."""
    t = FakeTime()
    limiter = RateLimiter(50, bucket=lambda _n, rate: TokenBucket(rate, now=t), sleep=t.sleep)
    sent = 0
    while t.now < 1010.0:
        limiter.wait_for_relay()
        sent += 1
    assert 50 + 500 <= sent <= 50 + 500 + 1  # +1: the send the loop starts at the 10 s mark
    assert max(t.slept) <= 1.0


def test_domains_have_budgets_of_their_own() -> None:
    t = FakeTime()
    limiter = RateLimiter(
        0,
        {"Gmail.com": 2, "*": 5},
        bucket=lambda _n, rate: TokenBucket(rate, now=t),
    )
    assert [limiter.domain_wait("a@gmail.com") for _ in range(2)] == [0.0, 0.0]
    assert limiter.domain_wait("b@GMAIL.com") == pytest.approx(0.5)
    # Other domains are untouched by gmail's budget, and each has its own.
    assert [limiter.domain_wait(f"x{n}@example.org") for n in range(5)] == [0.0] * 5
    assert limiter.domain_wait("x@example.org") > 0
    assert limiter.domain_wait("y@example.net") == 0.0
    t.now += 0.5
    assert limiter.domain_wait("c@gmail.com") == 0.0


def test_without_rates_nothing_is_limited() -> None:
    limiter = RateLimiter()
    assert limiter.relay is None
    assert all(limiter.domain_wait(f"p{n}@gmail.com") == 0.0 for n in range(1000))
    limiter.wait_for_relay()  # returns at once


def test_a_bad_rate_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"SMTP_DOMAIN_RATES\['gmail.com'\]"):
        RateLimiter(0, {"gmail.com": 0})


def test_the_redis_window_is_shared_by_every_worker(redis_url: str) -> None:
    """Two workers (two limiters, one Redis) share the relay's per-second budget."""
    t = FakeTime(2_000_000.25)
    redis = Redis.from_url(redis_url)
    workers = [RedisWindow(redis, "nurture:rate:relay", 3, now=t) for _ in range(2)]
    waits = [workers[n % 2].take() for n in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == [pytest.approx(0.75), pytest.approx(0.75)]
    t.now += 0.75  # the next second: a fresh budget
    assert workers[1].take() == 0.0
    assert 0 < redis.ttl("nurture:rate:relay:2000001") <= 2  # counters expire on their own
    redis.close()


def test_without_redis_each_worker_still_keeps_the_rate() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0")
    limiter = RateLimiter(0, {"*": 2}, bucket=redis_buckets(redis))
    assert [limiter.domain_wait("a@example.org") for _ in range(2)] == [0.0, 0.0]
    assert limiter.domain_wait("a@example.org") > 0
