"""asyncio helpers: a timeout without a task of its own (`asyncio.timeout` where Python has it)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`asyncio.wait_for(awaitable, seconds)`, raising asyncio.TimeoutError the same way.

    `wait_for` wraps a coroutine in a new task; from Python 3.11 the coroutine runs in the caller's own task
    under `asyncio.timeout` instead. On 3.10 this is `wait_for`.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


__all__ = ["within"]
