"""Flow-control rules of a bind: token bucket (TPS in parts, throttle back-off) and breaker.

The clock is a stand-in (allowed for time); everything else is the real code.
"""

from __future__ import annotations

from broadcast.flow import Breaker, BreakerState, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_counts_parts_and_refills_at_its_rate():
    clock = Clock()
    bucket = TokenBucket(100, clock=clock)
    assert bucket.take(50) == 5  # burst: 50 ms worth
    assert bucket.take(1) == 0
    clock.now += 0.025
    assert bucket.take(10) == 2


def test_token_bucket_slows_down_on_throttle_once_per_pause_and_recovers():
    clock = Clock()
    bucket = TokenBucket(100, clock=clock)
    bucket.slow_down()
    bucket.slow_down()  # the rest of the window's 0x58 answers
    assert bucket.rate == 50 and bucket.take(1) == 0
    clock.now += 1.0
    bucket.take(1)
    clock.now += 5.0
    bucket.take(1)
    assert 70 <= bucket.rate < 100
    clock.now += 10
    bucket.take(1)
    assert bucket.rate == 100


def test_token_bucket_lets_a_long_message_through_a_small_burst_in_debt():
    clock = Clock()
    bucket = TokenBucket(1, clock=clock)
    assert bucket.take_all(3)
    assert not bucket.take_all(1)
    clock.now += 2.9
    assert not bucket.take_all(1)
    clock.now += 1.2
    assert bucket.take_all(1)


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown():
    clock = Clock()
    breaker = Breaker(3, 10.0, clock=clock)
    breaker.failure(), breaker.failure(), breaker.success(), breaker.failure(), breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allows()
    clock.now += 10
    assert breaker.allows() and breaker.state is BreakerState.HALF_OPEN
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    breaker.allows()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED


def test_breaker_opens_on_a_lost_link_and_half_opens_on_a_new_bind():
    breaker = Breaker(5, 60.0, clock=Clock())
    breaker.trip()
    assert not breaker.allows()
    breaker.success()  # a late answer from before the loss
    assert breaker.state is BreakerState.OPEN
    breaker.link_up()
    assert breaker.allows() and breaker.state is BreakerState.HALF_OPEN
