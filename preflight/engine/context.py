"""What a check function sees: its target and service, its dependencies' results, and run-wide shared resources."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from preflight.engine.model import CheckResult
from preflight.engine.plan import Named

T = TypeVar("T")
ConfigT = TypeVar("ConfigT")
TargetT = TypeVar("TargetT", bound=Named)
ServiceT = TypeVar("ServiceT", bound=Named)

Observation = dict[str, Any]


class TokenBudget:
    """Counts tokens spent by inference checks and says when the budget is gone."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.spent = 0
        self.estimated = False  # some of `spent` is a request's upper bound: its answer reported no usage
        self._lock = threading.Lock()

    def exhausted(self) -> bool:
        with self._lock:
            return self.limit is not None and self.spent >= self.limit

    def spend(self, tokens: int, estimated: bool = False) -> None:
        with self._lock:
            self.spent += max(0, tokens)
            self.estimated = self.estimated or (estimated and tokens > 0)


class Resources:
    """Run-wide things checks share: lazily built clients and answers memoised across targets."""

    def __init__(self, *, token_budget: int | None = None, checks: frozenset[str] | None = None) -> None:
        self.checks = checks  # the ids of the checks this run will run (None: not known)
        self.budget = TokenBudget(token_budget)
        self._objects: dict[str, Any] = {}
        self._memo: dict[Any, asyncio.Future[Any]] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._lock = asyncio.Lock()
        self._background: list[asyncio.Future[Any]] = []
        self.counters: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def get(self, name: str, factory: Callable[[], Awaitable[T]],
                  closer: Callable[[T], Awaitable[None]] | None = None) -> T:
        """One object per name per run, built on first use (for example the shared HTTP client)."""
        async with self._lock:
            if name not in self._objects:
                value = await factory()
                self._objects[name] = value
                if closer is not None:
                    self._closers.append(lambda: closer(value))
            result: T = self._objects[name]
            return result

    async def shared(self, key: Any, factory: Callable[[], Awaitable[T]]) -> T:
        """Ask a question once per run; concurrent askers wait for the same answer (or exception)."""
        future = self._memo.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._memo[key] = future
            try:
                future.set_result(await factory())
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # mark retrieved: other askers re-raise it themselves
        if future.done():  # most askers come after the answer: nothing to wait for, nothing to shield
            done: T = future.result()
            return done
        result: T = await asyncio.shield(future)
        return result

    def background(self, task: asyncio.Future[Any]) -> None:
        """Keep a task that nobody awaits until the run ends, then cancel it if it is still going."""
        self._background.append(task)

    async def aclose(self) -> None:
        for task in self._background:
            if not task.done():
                task.cancel()
        self._background.clear()
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):  # closing is best effort at the end of a run
                await closer()
        self._closers.clear()


@dataclass
class Context(Generic[ConfigT, TargetT, ServiceT]):
    """The view one check invocation gets: the plan it runs in, its target and service (None: target-scoped)."""

    config: ConfigT
    target: TargetT
    service: ServiceT | None
    resources: Resources
    dependencies: Mapping[str, CheckResult] = field(default_factory=dict)
    origin: str = "local"
    observations: Mapping[str, Observation] | None = None
    observation_origin: str = "local"
    deadline: float = float("inf")
    used_origin: str | None = None

    def result_of(self, check_id: str) -> CheckResult | None:
        return self.dependencies.get(check_id)

    def evidence_of(self, check_id: str) -> Mapping[str, Any]:
        result = self.dependencies.get(check_id)
        return result.evidence if result is not None else {}

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def observe(self, name: str, collector: Callable[[], Awaitable[Observation]]) -> Observation:
        """Use an observation gathered elsewhere (in the resource group) if there is one, else collect it here.

        The result's origin follows what was used, so a report never claims an in-network verdict for
        something observed locally.
        """
        if self.observations is not None and name in self.observations:
            self.used_origin = self.observation_origin
            return self.observations[name]
        service = self.service.name if self.service is not None else ""
        return await self.resources.shared(("observation", self.target.name, service, name), collector)


__all__ = ["Context", "Observation", "Resources", "TokenBudget"]
