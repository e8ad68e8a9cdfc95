"""asyncio helpers: a timeout without a task of its own, and asyncio.run without formatting its result."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

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


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)`, with the result handed back outside the main task.

    asyncio.run ends by asking `signal.getsignal()` whether its SIGINT handler is still installed. The handler
    is a partial that holds the main task, and the enum lookup inside getsignal fails on it and formats it for
    its error message: the task, and with it the task's result, in full. For a 100-service run that result is
    the report, and its repr cost 85 ms after the last check. Here the main task's result is None.
    """
    holder: list[T] = []

    async def main() -> None:
        holder.append(await coroutine)

    asyncio.run(main())
    return holder[0]


__all__ = ["run", "within"]
