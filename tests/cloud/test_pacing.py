"""The client-side token buckets and the retry loop, on a fake clock: arithmetic, adaptation, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from preflight.cloud.pacing import (
    BACKOFF_CAP_S,
    DECREASE,
    DEFAULT_RATE,
    RECOVERY_S,
    THROTTLING_ATTEMPTS,
    TRANSIENT_ATTEMPTS,
    Bucket,
    Pacer,
    backoff_s,
    default_burst,
)
from preflight.errors import CloudError


class FakeClock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self, late_s: float = 0.0) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.late_s = late_s  # how much later than asked every sleeper wakes: a busy event loop

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)  # a sleeper lets the others run, as a real one does
        self.now += seconds + self.late_s


def pacer(clock: FakeClock, **limits: float) -> Pacer:
    return Pacer({key.replace("__", ":"): value for key, value in limits.items()}, clock=clock, sleep=clock.sleep,
                 rng=lambda: 1.0)


def throttled(retry_after_s: float | None = None) -> CloudError:
    return CloudError("Request was denied due to user flow control.", code="Throttling.User", status_code=429,
                      request_id="RID-1", action="dataworks:ListNetworks", retry_after_s=retry_after_s)


def answers(clock: FakeClock, *outcomes: CloudError | None) -> tuple[Callable[[], object], list[float]]:
    """A send() that raises the given errors in turn (None: answers), noting when each try was sent."""
    sent: list[float] = []
    queue = list(outcomes)

    async def send() -> dict[str, str]:
        sent.append(clock.now)
        outcome = queue.pop(0) if queue else None
        if outcome is not None:
            raise outcome
        return {"RequestId": "ok"}

    return send, sent


def test_a_bucket_hands_out_tokens_at_its_rate() -> None:
    bucket = Bucket(10.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.05) == pytest.approx(0.05) and bucket.take(0.1) == 0.0
    loop = asyncio.new_event_loop()
    bucket.queue.extend((loop.create_future(), float("inf")) for _ in range(3))
    assert bucket.queue_s(0.1) == pytest.approx(0.4)  # behind three waiters
    bucket.queue.clear()
    loop.close()
    assert bucket.take(10.0) == 0.0  # a quiet spell refills it, up to its burst only
    assert bucket.take(10.0) == pytest.approx(0.1)


def test_a_throttle_halves_the_rate_once_per_hold_and_it_recovers_linearly() -> None:
    bucket = Bucket(20.0)
    bucket.take(0.0)
    bucket.throttled(0.0)
    bucket.throttled(0.1)  # a call sent before the decrease: the same signal
    assert bucket.rate == pytest.approx(20.0 * DECREASE + 0.1 * 20.0 / RECOVERY_S) and bucket.throttles == 2
    bucket.queue_s(RECOVERY_S / 4)
    assert bucket.rate == pytest.approx(10.0 + 20.0 / 4)
    bucket.queue_s(RECOVERY_S * 2)
    assert bucket.rate == 20.0


def test_the_rate_never_drops_to_nothing() -> None:
    bucket = Bucket(20.0)
    for second in range(40):
        bucket.throttled(float(second * 2))
    assert bucket.rate >= 1.0


def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    assert [backoff_s(attempt, lambda: 1.0) for attempt in (1, 2, 3)] == pytest.approx([0.2, 0.4, 0.8])
    assert backoff_s(30, lambda: 1.0) == BACKOFF_CAP_S
    assert backoff_s(3, lambda: 0.0) == 0.0


def test_limits_come_from_the_config_per_action_then_default() -> None:
    clock = FakeClock()
    limits = pacer(clock, default=5, dataworks__ListNetworks=2)
    assert limits.rate_of("dataworks", "ListNetworks") == 2 and limits.rate_of("dataworks", "GetProject") == 5
    assert pacer(clock).rate_of("vpc", "DescribeVSwitchAttributes") == DEFAULT_RATE
    # Each region has its own bucket.
    assert limits.bucket("dataworks", "cn-shanghai", "GetProject") is not limits.bucket("dataworks", "cn-beijing",
                                                                                         "GetProject")


def test_calls_of_one_key_are_paced_without_polling() -> None:
    clock = FakeClock()
    paced = pacer(clock, default=4)
    send, sent = answers(clock)

    async def main() -> None:
        await asyncio.gather(*(paced.call("dataworks", "GetProject", "cn-beijing", send) for _ in range(5)))

    asyncio.run(main())
    assert [round(stamp - 100.0, 3) for stamp in sent] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(clock.slept) == 4  # one sleep per token waited for, none to poll


def test_a_throttled_call_waits_at_least_retry_after_then_succeeds() -> None:
    clock = FakeClock()
    paced = pacer(clock)
    send, sent = answers(clock, throttled(retry_after_s=3.0), None)
    assert asyncio.run(paced.call("dataworks", "ListNetworks", "cn-beijing", send)) == {"RequestId": "ok"}
    assert sent[1] - sent[0] >= 3.0
    assert paced.bucket("dataworks", "cn-beijing", "ListNetworks").rate < DEFAULT_RATE


def test_throttling_is_retried_up_to_the_cap_then_says_how_long() -> None:
    clock = FakeClock()
    send, sent = answers(clock, *[throttled()] * 50)
    with pytest.raises(CloudError) as caught:
        asyncio.run(pacer(clock).call("dataworks", "ListNetworks", "cn-beijing", send))
    assert len(sent) == THROTTLING_ATTEMPTS and caught.value.code == "Throttling.User"
    assert "throttled by the account's flow control" in str(caught.value)
    assert caught.value.request_id == "RID-1"


def test_throttling_past_the_deadline_fails_saying_so_before_it() -> None:
    clock = FakeClock()
    send, sent = answers(clock, *[throttled(retry_after_s=10.0)] * 50)
    deadline = clock.now + 28.0
    with pytest.raises(CloudError) as caught:
        asyncio.run(pacer(clock).call("dataworks", "ListNetworks", "cn-beijing", send, deadline=deadline))
    assert len(sent) == 3 and clock.now < deadline
    assert str(caught.value).startswith("throttled by the account's flow control (Throttling.User) for 20 s")
    assert "raise the limit or run fewer targets at once" in str(caught.value)


def test_a_token_that_comes_after_the_deadline_is_not_waited_for() -> None:
    clock = FakeClock()
    paced = pacer(clock, default=1)
    send, sent = answers(clock)
    asyncio.run(paced.call("dataworks", "GetProject", "cn-beijing", send))
    with pytest.raises(CloudError) as caught:
        asyncio.run(paced.call("dataworks", "GetProject", "cn-beijing", send, deadline=clock.now + 0.5))
    assert len(sent) == 1 and caught.value.code == "Throttling.Client" and "cloud.rate_limits" in str(caught.value)
    # No token was taken: a call with time enough gets one at the bucket's pace.
    asyncio.run(paced.call("dataworks", "GetProject", "cn-beijing", send, deadline=clock.now + 5))
    assert sent[1] - sent[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("action", "tries"), [("GetProject", TRANSIENT_ATTEMPTS),
                                               ("ExecuteAdhocWorkflowInstance", 1)])
def test_5xx_is_retried_for_reads_only(action: str, tries: int) -> None:
    clock = FakeClock()
    unavailable = CloudError("temporary failure", code="ServiceUnavailable", status_code=503)
    send, sent = answers(clock, *[unavailable] * 10)
    with pytest.raises(CloudError) as caught:
        asyncio.run(pacer(clock).call("dataworks", action, "cn-beijing", send))
    assert len(sent) == tries and caught.value is unavailable


def test_an_access_denied_is_not_retried() -> None:
    clock = FakeClock()
    denied = CloudError("no", code="Forbidden.RAM", status_code=403)
    send, sent = answers(clock, denied, None)
    with pytest.raises(CloudError):
        asyncio.run(pacer(clock).call("dataworks", "GetProject", "cn-beijing", send))
    assert len(sent) == 1


def test_a_late_dispatcher_grants_every_token_there_is_at_each_wake() -> None:
    clock = FakeClock(late_s=0.1)  # every wake comes two tokens' time late at 20 calls a second
    paced = pacer(clock, default=20)
    send, sent = answers(clock)

    async def main() -> None:
        await asyncio.gather(*(paced.call("dataworks", "ListNetworks", "cn-beijing", send) for _ in range(41)))

    asyncio.run(main())
    burst = default_burst(20)
    # A wake every 0.15 s grants the burst's two tokens at once: one caller per wake would take 40 x 0.15 s.
    assert sent[-1] - sent[0] == pytest.approx(39 / burst * 0.15, abs=0.16)
    # Never more at once than the burst, nor more over any second than the rate and the burst.
    assert max(sent.count(stamp) for stamp in sent) == burst
    assert all(sum(start <= stamp < start + 1.0 for stamp in sent) <= 20 + burst for start in sent)


def test_a_cancelled_caller_leaves_the_queue_and_its_turn_to_the_next() -> None:
    clock = FakeClock()
    paced = pacer(clock, default=2)
    send, sent = answers(clock)

    async def main() -> None:
        await paced.call("dataworks", "GetProject", "cn-beijing", send)
        doomed = asyncio.ensure_future(paced.call("dataworks", "GetProject", "cn-beijing", send))
        kept = asyncio.ensure_future(paced.call("dataworks", "GetProject", "cn-beijing", send))
        await asyncio.sleep(0)
        doomed.cancel()
        await kept

    asyncio.run(main())
    assert [round(stamp - 100.0, 3) for stamp in sent] == [0.0, 0.5]


def test_callers_queued_when_the_rate_drops_past_their_deadline_are_refused_untaken() -> None:
    clock = FakeClock()
    paced = pacer(clock, default=10)
    send, sent = answers(clock)
    bucket = paced.bucket("dataworks", "cn-beijing", "ListNetworks")

    async def main() -> list[BaseException | dict[str, str]]:
        await paced.call("dataworks", "ListNetworks", "cn-beijing", send)
        calls = [asyncio.ensure_future(paced.call("dataworks", "ListNetworks", "cn-beijing", send,
                                                  deadline=clock.now + 1.5)) for _ in range(8)]
        await asyncio.sleep(0)
        bucket.throttled(clock.now)  # another caller's answer: down to 5 calls a second, eight queued
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    refused = [outcome for outcome in outcomes if isinstance(outcome, CloudError)]
    assert refused and all(error.code == "Throttling.Client" for error in refused)
    assert "throttled by the account's flow control" in str(refused[0])
    # Those that were sent went in time, and in order: the refused were the queue's tail.
    assert all(stamp - 100.0 <= 1.5 for stamp in sent)
    assert all(isinstance(outcome, dict) for outcome in outcomes[:len(sent) - 1])
