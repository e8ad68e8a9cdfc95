"""asyncio helpers: a timeout without a task of its own, and asyncio.run without formatting its result and with
work for the moments the loop would only wait."""

from __future__ import annotations

import asyncio
import selectors
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`asyncio.wait_for(awaitable, seconds)`, raising asyncio.TimeoutError the same way.

    `wait_for` wraps a coroutine in a new task and waits for that. A 100-service run awaits about 3,000
    things with a deadline (every check, every request, every response body), and the task and its scheduling
    were a visible share of its CPU. From Python 3.11 the coroutine runs in the caller's own task under
    `asyncio.timeout`; on 3.10 this is `wait_for`.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


class Idle(Protocol):
    """Work done while the event loop has nothing else to do: `pending` is asked often and must be cheap."""

    def pending(self) -> bool: ...

    def work(self, budget_s: float) -> None:
        """Do a slice of the work, about `budget_s` long at most."""


IDLE_SLICE_S = 0.002  # how long a slice of idle work may keep newly arrived I/O waiting


def _idle_selector(idle: Idle) -> selectors.BaseSelector:
    """The platform's default selector, which does a slice of `idle` work whenever the loop would block.

    The event loop asks its selector for events with a timeout of 0 while callbacks are ready, and with a
    longer one (or none) only when it has nothing to do but wait for I/O or a timer. In that case, as long as
    there is idle work, one slice is done and the selector is polled again without waiting, so that I/O which
    arrived meanwhile is handled at most a slice late, and the loop comes back for the next slice.
    """

    class IdleSelector(selectors.DefaultSelector):
        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if (timeout is None or timeout > 0) and idle.pending():
                ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
                if ready:
                    return ready
                idle.work(IDLE_SLICE_S)
                return super().select(0)
            return super().select(timeout)

    return IdleSelector()


def run(coroutine: Coroutine[Any, Any, T], *, idle: Idle | None = None) -> T:
    """`asyncio.run(coroutine)`, with the result handed back outside the main task, and `idle` work done
    while the loop waits (Python 3.11 and later, not on Windows; else `idle` is left undone and its owner does it
    later).

    asyncio.run ends by asking `signal.getsignal()` whether its SIGINT handler is still installed. The handler
    is a partial that holds the main task, and the enum lookup inside getsignal fails on it and formats it for
    its error message: the task, and with it the task's result, in full. For a 100-service run that result is
    the report, and its repr cost 85 ms after the last check. Here the main task's result is None.
    """
    holder: list[T] = []

    async def main() -> None:
        holder.append(await coroutine)

    # Windows' default loop is not a selector loop (its subprocesses need the proactor): it keeps its own.
    if idle is not None and sys.version_info >= (3, 11) and sys.platform != "win32":
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(_idle_selector(idle))) as runner:
            runner.run(main())
    else:
        asyncio.run(main())
    return holder[0]


__all__ = ["IDLE_SLICE_S", "Idle", "run", "within"]
