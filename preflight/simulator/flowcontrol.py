"""The simulated gateway's flow control: a token bucket per action, answered as `Throttling.User` (HTTP 429).

Written here rather than taken from a rate-limiting library: the simulator needs only one bucket per key with a
clock the tests can drive, and its answer must be the gateway's, not a library's."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# The project's Alibaba Cloud reference gives Throttling.User and Throttling.Api HTTP 429; the gateway does not always
# send x-acs-retry-after, so neither does the simulator.
THROTTLED_STATUS = 429
THROTTLED_CODE = "Throttling.User"
THROTTLED_MESSAGE = "Request was denied due to user flow control."


def default_burst(rate: float) -> float:
    """A small burst: a fifth of a second's calls, at least one."""
    return max(1.0, rate / 5.0)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class FlowControl:
    """At most `rate` calls a second per key (product, region, action), with `burst` calls at once."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("the rate limit must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else default_burst(rate)
        self._clock = clock
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._lock = threading.Lock()

    def admit(self, *key: str) -> float:
        """0 when the call may go ahead (its token taken), else the seconds until a token is there."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0 - 1e-9:  # a refill of exactly one token may fall short by a rounding error
                bucket.tokens = max(0.0, bucket.tokens - 1.0)
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


__all__ = ["THROTTLED_CODE", "THROTTLED_MESSAGE", "THROTTLED_STATUS", "FlowControl", "default_burst"]
