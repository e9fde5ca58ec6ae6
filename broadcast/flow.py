"""Flow control for one bind: a token bucket for its TPS and a circuit breaker for its health.

Both are plain state machines over an injectable clock, owned by the carrier pool (one of each per
bind, plus a bucket per long number). Neither is thread-safe: the owner holds a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["Breaker", "BreakerState", "TokenBucket"]


class TokenBucket:
    """A rate in PDUs per second (a three-part message takes three tokens), with a short burst.

    `slow_down()` answers a throttle: pause, halve the rate (at most once per pause), then recover
    by 5 % of the configured rate per second. Not thread-safe: its owner holds a lock.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.configured = self.ceiling = self.rate = float(rate)
        self.burst = max(1.0, rate / 20)  # 50 ms worth: smooth at the carrier, full windows here
        self.tokens = self.burst
        self.clock = clock
        self.last = clock()
        self.paused_until = 0.0
        self.pause_s = 1.0

    def _refill(self, now: float) -> None:
        elapsed = now - self.last
        if elapsed > 0:
            if self.rate < self.ceiling and now >= self.paused_until:
                self.rate = min(self.ceiling, self.rate + self.ceiling * 0.05 * elapsed)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.last = now

    def take(self, n: int) -> int:
        """Up to `n` tokens now (possibly 0)."""
        now = self.clock()
        if now < self.paused_until:
            return 0
        self._refill(now)
        granted = min(n, int(self.tokens))
        self.tokens -= granted
        return granted

    def take_all(self, n: int) -> bool:
        """All `n` or none. A message bigger than the burst goes into debt, repaid at the rate."""
        now = self.clock()
        if now < self.paused_until:
            return False
        self._refill(now)
        if self.tokens < min(n, self.burst) - 1e-9:
            return False
        self.tokens -= n
        return True

    def give_back(self, n: int) -> None:
        self.tokens += n

    def set_share(self, share: float) -> None:
        """Run at `share` of the configured rate from now on (1.0: all of it, climbing back as after
        a throttle)."""
        self.ceiling = self.configured * share
        self.rate = min(self.rate, self.ceiling)

    def slow_down(self) -> None:
        now = self.clock()
        if now < self.paused_until:
            return  # the rest of a window answered 0x58 for the same overload
        self._refill(now)
        self.rate = max(self.ceiling / 64, self.rate / 2)
        self.tokens = 0.0
        self.paused_until = now + self.pause_s


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Breaker:
    """Per bind: open after `failures` failures in a row or a lost link; after `cooldown_s` (or a
    fresh bind) one probe goes through half-open; its success closes it, its failure reopens it."""

    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown_s, self.clock = failures, cooldown_s, clock
        self.state = BreakerState.CLOSED
        self.consecutive = 0
        self.opened_at = 0.0

    def allows(self) -> bool:
        if self.state is BreakerState.OPEN:
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = BreakerState.HALF_OPEN
        return True

    def success(self) -> None:
        if self.state is not BreakerState.OPEN:  # a late answer from before the trip proves nothing
            self.state, self.consecutive = BreakerState.CLOSED, 0

    def failure(self) -> None:
        self.consecutive += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive >= self.threshold:
            self.trip()

    def trip(self) -> None:
        self.state, self.opened_at = BreakerState.OPEN, self.clock()

    def link_up(self) -> None:
        if self.state is BreakerState.OPEN:
            self.state = BreakerState.HALF_OPEN  # a bind that just succeeded is the cool-down's end
