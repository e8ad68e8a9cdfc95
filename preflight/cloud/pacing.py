"""Client-side pacing and adaptive retry of cloud calls, after the AWS SDKs' adaptive mode: a token bucket per
product, region and action whose rate drops on throttling and recovers, and backoff with full jitter.

Hand-written: the rate-limiting libraries on PyPI pace one fixed rate and none adapts to throttling answers, waits
on an asyncio clock, or stops at a caller's deadline.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from preflight.errors import CloudError

T = TypeVar("T")

DEFAULT_RATE = 20.0  # calls per second per product, region and action, unless cloud.rate_limits says otherwise
DECREASE = 0.5  # a throttled bucket's rate is multiplied by this
MIN_RATE_SHARE = 0.05  # never slower than this share of the configured rate
RECOVERY_S = 10.0  # a throttled bucket climbs back to its configured rate over this long without throttling
DECREASE_HOLD_S = 1.0  # throttles of calls sent before the last decrease do not decrease it again
THROTTLING_ATTEMPTS = 8
TRANSIENT_ATTEMPTS = 3
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
# A call that cannot be sent this long before its deadline is not sent: its answer would come too late.
DEADLINE_MARGIN_S = 0.25
# Reads are safe to repeat; a submission (ExecuteAdhocWorkflowInstance) is never sent twice.
IDEMPOTENT_PREFIXES = ("Get", "List", "Describe")
TRANSIENT_CODES = ("Timeout", "ConnectionError", "ServiceUnavailable", "InternalError")


def is_throttling(error: CloudError) -> bool:
    """The account's flow control answered: `Throttling`, `Throttling.User`, `Throttling.Api` or HTTP 429."""
    return error.code.startswith("Throttling") or error.status_code == 429


def is_transient(error: CloudError) -> bool:
    """A failure worth asking again about: the API failed on its side, or no answer came in time."""
    return error.code.startswith(TRANSIENT_CODES) or (error.status_code or 0) >= 500


def is_idempotent(action: str) -> bool:
    return action.startswith(IDEMPOTENT_PREFIXES)


def backoff_s(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: a uniform draw below base * 2^(attempt - 1), capped (attempt counts from 1)."""
    return float(rng() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1)))


def default_burst(rate: float) -> float:
    """Tokens a bucket may bank: a tenth of a second's calls, at least one. A dispatcher that wakes late sends
    what it banked meanwhile instead of losing it, while staying well inside a gateway's own small burst."""
    return max(1.0, rate / 10.0)


@dataclass
class Bucket:
    """One key's token bucket and the callers queued on it, in order. One dispatcher task per bucket hands out
    tokens: each time it wakes it grants every token there is to the callers at the head of the queue, so the
    calls keep to the rate by the clock even when a busy event loop wakes it late."""

    ceiling: float  # the configured rate
    burst: float = 0.0  # 0: default_burst(ceiling)
    rate: float = 0.0
    tokens: float = 0.0
    stamp: float | None = None
    decreased_at: float = float("-inf")
    throttles: int = 0
    # Queued callers: the future a token is granted on (True) or refused for its deadline (False), and the deadline.
    queue: deque[tuple[asyncio.Future[bool], float]] = field(default_factory=deque, repr=False)
    dispatcher: asyncio.Task[None] | None = field(default=None, repr=False)
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    scanned_rate: float = 0.0  # the rate the queue's deadlines were last checked at

    def __post_init__(self) -> None:
        self.rate = self.rate or self.ceiling
        self.burst = self.burst or default_burst(self.ceiling)
        self.tokens = self.burst
        self.scanned_rate = self.rate

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            elapsed = max(0.0, now - self.stamp)
            # Recover first, linearly in time, so a long quiet spell earns the rate back before its tokens.
            self.rate = min(self.ceiling, self.rate + elapsed * self.ceiling / RECOVERY_S)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take a token if one is there (0), else the seconds until one is, taking none."""
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def queue_s(self, now: float) -> float:
        """How long a caller queueing now would wait for its token, behind those already waiting."""
        self._refill(now)
        return max(0.0, (len(self.queue) + 1.0 - self.tokens) / self.rate)

    def give_back(self) -> None:
        """A granted token its caller did not use (it was cancelled meanwhile)."""
        self.tokens = min(self.burst, self.tokens + 1.0)

    def throttled(self, now: float) -> None:
        """The API refused a call for its rate: slow down, once per hold (throttles in flight are one signal)."""
        self._refill(now)
        self.throttles += 1
        if now - self.decreased_at < DECREASE_HOLD_S:
            return
        self.decreased_at = now
        self.rate = max(self.ceiling * MIN_RATE_SHARE, self.rate * DECREASE)
        self.tokens = min(self.tokens, 0.0)  # the tokens earned at the old rate are not the account's


@dataclass
class Pacer:
    """The buckets of one session and the retry loop every cloud call goes through."""

    limits: Mapping[str, float] = field(default_factory=dict)  # cloud.rate_limits: "default", "product:Action"
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: Callable[[], float] = random.random
    buckets: dict[tuple[str, str, str], Bucket] = field(default_factory=dict)

    def rate_of(self, product: str, action: str) -> float:
        return float(self.limits.get(f"{product}:{action}", self.limits.get("default", DEFAULT_RATE)))

    def bucket(self, product: str, region: str, action: str) -> Bucket:
        key = (product, region, action)
        found = self.buckets.get(key)
        if found is None:
            found = self.buckets[key] = Bucket(self.rate_of(product, action))
        return found

    async def call(self, product: str, action: str, region: str, send: Callable[[], Awaitable[T]], *,
                   deadline: float = float("inf")) -> T:
        """`send()` paced by the key's bucket, retried on throttling (and on transient failures of reads).

        Raises the last CloudError when the attempts run out, or a throttling CloudError that says how long the
        call was held when the next try could not be sent before `deadline` (a `time.monotonic` instant).
        """
        bucket = self.bucket(product, region, action)
        started = self.clock()
        throttled_by: CloudError | None = None
        attempts = {"throttling": 0, "transient": 0}
        while True:
            if self.clock() + bucket.queue_s(self.clock()) + DEADLINE_MARGIN_S > deadline or \
                    not await self._token(bucket, deadline):
                raise self._out_of_time(product, action, region, bucket, started, throttled_by)
            try:
                return await send()
            except CloudError as error:
                now = self.clock()
                if is_throttling(error):
                    bucket.throttled(now)
                    throttled_by = error
                    attempts["throttling"] += 1
                    if attempts["throttling"] >= THROTTLING_ATTEMPTS:
                        raise self._throttled(error, started, f"{THROTTLING_ATTEMPTS} attempts") from None
                    pause = max(error.retry_after_s or 0.0, backoff_s(attempts["throttling"], self.rng))
                elif is_transient(error) and is_idempotent(action):
                    attempts["transient"] += 1
                    if attempts["transient"] >= TRANSIENT_ATTEMPTS:
                        raise
                    pause = backoff_s(attempts["transient"], self.rng)
                else:
                    raise
                if now + pause + DEADLINE_MARGIN_S > deadline:
                    if throttled_by is error:
                        raise self._throttled(error, started, "the check's deadline") from None
                    raise
                await self.sleep(pause)

    async def _token(self, bucket: Bucket, deadline: float) -> bool:
        """Take a token now if none queue before this caller, else queue for the dispatcher to grant one (no
        thread is held meanwhile); False, taking none, when it would come too late (the rate dropped while this
        caller queued)."""
        loop = asyncio.get_running_loop()
        if bucket.loop is not loop:  # a session outlives one event loop (asyncio.run per command): its queue does not
            bucket.queue.clear()
            bucket.dispatcher, bucket.loop = None, loop
        if not bucket.queue and bucket.take(self.clock()) == 0.0:
            return True
        granted: asyncio.Future[bool] = loop.create_future()
        bucket.queue.append((granted, deadline))
        if bucket.dispatcher is None or bucket.dispatcher.done():
            bucket.dispatcher = loop.create_task(self._dispatch(bucket))
        try:
            return await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled() and granted.result():
                bucket.give_back()
            raise

    async def _dispatch(self, bucket: Bucket) -> None:
        """Grant tokens to the queue's head as they come, all that are there at each wake, until it is empty."""
        queue = bucket.queue
        while queue:
            if queue[0][0].done():  # its caller was cancelled
                queue.popleft()
                continue
            now = self.clock()
            wait = bucket.take(now)
            if wait == 0.0:
                queue.popleft()[0].set_result(True)
                continue
            if bucket.rate < bucket.scanned_rate:
                self._refuse_late(bucket, now + wait)
            bucket.scanned_rate = bucket.rate
            if queue:
                await self.sleep(wait)

    @staticmethod
    def _refuse_late(bucket: Bucket, first: float) -> None:
        """The rate dropped: refuse, taking no token, the queued callers whose turn now comes after their deadline
        (the head's turn is at `first`, each behind it one token later)."""
        kept: deque[tuple[asyncio.Future[bool], float]] = deque()
        for granted, deadline in bucket.queue:
            turn = first + len(kept) / bucket.rate
            if granted.done():
                continue
            if turn + DEADLINE_MARGIN_S > deadline:
                granted.set_result(False)
            else:
                kept.append((granted, deadline))
        bucket.queue.clear()
        bucket.queue.extend(kept)

    def _throttled(self, error: CloudError, started: float, limit: str) -> CloudError:
        """A throttling error that says how long the call was held, and what to do about it."""
        held = self.clock() - started
        return CloudError(f"throttled by the account's flow control ({error.code}) for {held:.0f} s, up to "
                          f"{limit}; raise the limit or run fewer targets at once", code=error.code,
                          status_code=error.status_code, request_id=error.request_id, action=error.action,
                          retry_after_s=error.retry_after_s)

    def _out_of_time(self, product: str, action: str, region: str, bucket: Bucket, started: float,
                     throttled: CloudError | None) -> CloudError:
        """The next try cannot be sent before the deadline: throttled by the account, or held by our own pacing."""
        if throttled is not None:
            return self._throttled(throttled, started, "the check's deadline")
        held = self.clock() - started
        if bucket.throttles:
            cause = (f"throttled by the account's flow control for {held:.0f} s ({product}:{action} in {region} "
                     f"paced down to {bucket.rate:.2g} calls/s after {bucket.throttles} throttling answers)")
        else:
            cause = (f"held back {held:.0f} s by the client's pacing of {product}:{action} in {region} at "
                     f"{bucket.rate:.2g} calls/s (cloud.rate_limits)")
        return CloudError(f"{cause}, up to the check's deadline; raise the limit or run fewer targets at once",
                          code="Throttling.Client", action=f"{product}:{action}")


__all__ = ["DEFAULT_RATE", "Bucket", "Pacer", "backoff_s", "default_burst", "is_idempotent", "is_throttling",
           "is_transient"]
