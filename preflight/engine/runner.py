"""Run the check graph for every target and service concurrently, with timeouts and blocked-by skips."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence

# A `from` import: the SDK's background import may be loading this module at the same moment, and Python can
# return from `import a.b` before `b` is set on `a` (an AttributeError on first use).
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from preflight import __version__
from preflight.engine.aio import within
from preflight.engine.context import Context, Observation, Resources
from preflight.engine.model import CheckResult, Outcome, RunReport, Status, Timings
from preflight.engine.plan import Named, Plan, Target
from preflight.engine.redact import REDACTOR
from preflight.engine.registry import Check, Registry

DEFAULT_CONCURRENCY = 256
MAX_RESOLVER_THREADS = 128
DEFAULT_RUN_TIMEOUT_S = 300.0

TargetT = TypeVar("TargetT", bound=Target)
# What the report's header says of a target ({"name": ..., "region": ...}): the plan's words, not the engine's.
Describe = Callable[[TargetT], Mapping[str, str | None]]


class Progress(Protocol):
    """Receives live events while a run goes on (the console draws them)."""

    def started(self, check: Check, target: str, service: str | None) -> None: ...

    def finished(self, result: CheckResult) -> None: ...


class _Silent:
    def started(self, check: Check, target: str, service: str | None) -> None:
        return None

    def finished(self, result: CheckResult) -> None:
        return None


@dataclass(frozen=True)
class Selection:
    """Which checks run: `only` (with their dependencies) and `skip` (reported as skipped)."""

    only: frozenset[str] | None = None
    skip: frozenset[str] = frozenset()
    targets: frozenset[str] | None = None

    @classmethod
    def build(cls, registry: Registry, only: Sequence[str] = (), skip: Sequence[str] = (),
              targets: Sequence[str] = ()) -> Selection:
        chosen = frozenset(registry.with_dependencies(registry.matching(only))) if only else None
        return cls(chosen, frozenset(registry.matching(skip)) if skip else frozenset(),
                   frozenset(targets) if targets else None)


@dataclass
class RunOptions:
    """Knobs of one run."""

    timeout_s: float = DEFAULT_RUN_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    origin: str = "local"
    # In-network mode: observations per (target, service name or "") and the origin they came from per target.
    observations: Mapping[tuple[str, str], Mapping[str, Observation]] | None = None
    observation_origins: Mapping[str, str] = field(default_factory=dict)
    token_budget: int | None = None
    notes: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()  # the command line, secrets masked, for the reports' header
    # With `run --wait`: results of an earlier round that stand, by (target, check, service); these checks are
    # not run again, and what depends on them sees these results.
    carried: Mapping[tuple[str, str, str | None], CheckResult] = field(default_factory=dict)
    # Awaited once the run's clock has started and before any check does (the CLI waits for the cloud SDK's
    # import in a run of many services: preflight.cli.run).
    hold: Callable[[], Awaitable[object]] | None = None


def tool_info() -> dict[str, str]:
    return {"name": "dw-preflight", "version": __version__, "python": sys.version.split()[0],
            "platform": platform_name(), "host": socket.gethostname()}


@functools.cache
def platform_name() -> str:
    """The OS, its release, the machine and the C library, as `platform.platform()` words them on Linux.

    Without what `platform.platform()` does to find out: run `uname -p` in a subprocess (a fork of the whole
    process, at the end of every run) and scan the interpreter's binary for the glibc version.
    """
    if not hasattr(os, "uname"):
        import platform

        return platform.platform(terse=True)
    uname = os.uname()
    words = [uname.sysname, uname.release, uname.machine]
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # not glibc: musl, macOS
        libc = ""
    if libc:
        words += ["with", libc.replace(" ", "")]
    return "-".join(word.replace(" ", "_") for word in words if word)


def finalise(check: Check, target: str, service: str | None, outcome: Outcome, *, origin: str,
             start: float, end: float, run_start: float, blocked_by: tuple[str, ...] = (),
             ready: float | None = None) -> CheckResult:
    """The one place an outcome becomes a result: every text field passes through the redactor here.

    `ready` is when the check could have started (its dependencies settled), `start` when its own work began
    (after waiting for a concurrency slot and the event loop's turn), `end` when it finished.
    """
    return CheckResult(
        check=check.id, title=check.title, target=target, service=service, status=outcome.status,
        summary=REDACTOR.text(outcome.summary), evidence=REDACTOR.mapping(outcome.evidence),
        remediation=REDACTOR.text(outcome.remediation), docs=outcome.docs or check.docs,
        blocked_by=blocked_by, origin=origin,
        timings=Timings(round((start - run_start) * 1000, 3), round((end - start) * 1000, 3),
                        None if ready is None else round((min(ready, start) - run_start) * 1000, 3)),
        tokens=outcome.tokens,
    )


def by_name(target: Target) -> Mapping[str, str | None]:
    """A target described by its name alone, for plans that say nothing more of their targets."""
    return {"name": target.name}


class _TargetRun(Generic[TargetT]):
    """The check graph of one target: target-scoped checks once, service-scoped checks per service."""

    def __init__(self, runner: Runner[TargetT], target: TargetT) -> None:
        self.runner = runner
        self.target = target
        self.futures: dict[tuple[str, str | None], asyncio.Future[CheckResult]] = {}
        self.waiting: dict[tuple[str, str | None], int] = {}  # how many dependencies a check still waits for
        self.dependents: dict[tuple[str, str | None], list[tuple[Check, Named | None]]] = {}

    def schedule(self) -> list[asyncio.Future[CheckResult]]:
        """A future per check and subject, in report order; the checks without dependencies start now.

        A check's task starts when its last dependency settles (`_settled`), not before: a task started early
        only waits, and the time it becomes ready is the start of its queue time.
        """
        loop = asyncio.get_running_loop()
        planned: list[tuple[Check, Named | None]] = []
        subjects: list[Named | None] = [None, *self.target.services]
        for check in self.runner.checks:
            for service in subjects:
                if (check.scope == "target") != (service is None):
                    continue
                self.futures[(check.id, service.name if service else None)] = loop.create_future()
                planned.append((check, service))
        ready = []
        for check, service in planned:
            waits = self.dependency_keys(check, service)
            if waits:
                self.waiting[(check.id, service.name if service else None)] = len(waits)
                for dependency in waits:
                    self.dependents.setdefault(dependency, []).append((check, service))
            else:
                ready.append((check, service))
        for check, service in ready:
            self.start(check, service)
        return [self.futures[(check.id, service.name if service else None)] for check, service in planned]

    def dependency_keys(self, check: Check, service: Named | None) -> list[tuple[str, str | None]]:
        """The futures a check waits for: its dependency for the same service, else the target's."""
        name = service.name if service else None
        keys = []
        for dependency in check.depends_on:
            if (dependency, name) in self.futures:
                keys.append((dependency, name))
            elif (dependency, None) in self.futures:
                keys.append((dependency, None))
        return keys

    def start(self, check: Check, service: Named | None) -> None:
        ready = time.monotonic()  # the check may run from now: time until its work starts is queue time
        self.runner.tasks.append(asyncio.get_running_loop().create_task(self.execute(check, service, ready)))

    def _settled(self, key: tuple[str, str | None]) -> None:
        """Start every check whose last dependency this was."""
        for check, service in self.dependents.pop(key, ()):
            waiting = (check.id, service.name if service else None)
            self.waiting[waiting] -= 1
            if self.waiting[waiting] == 0:
                self.start(check, service)

    async def execute(self, check: Check, service: Named | None, ready: float) -> None:
        runner = self.runner
        service_name = service.name if service else None
        future = self.futures[(check.id, service_name)]
        origin = runner.options.origin
        try:
            # Settled before this task started (_settled): awaiting a done future does not suspend.
            dependencies = {key[0]: await self.futures[key] for key in self.dependency_keys(check, service)}
            result = await self.evaluate(check, service, dependencies, origin, ready)
        except BaseException as exc:  # the graph must settle even when the runner itself is cancelled
            now = time.monotonic()
            result = finalise(check, self.target.name, service_name,
                              Outcome(Status.ERROR, f"internal error: {type(exc).__name__}: {exc}"),
                              origin=origin, start=now, end=now, run_start=runner.started, ready=ready)
            if not isinstance(exc, Exception):
                future.set_result(result)
                self._settled((check.id, service_name))
                raise
        future.set_result(result)
        runner.progress.finished(result)
        self._settled((check.id, service_name))

    async def evaluate(self, check: Check, service: Named | None,
                       dependencies: dict[str, CheckResult], origin: str, ready: float) -> CheckResult:
        runner = self.runner
        service_name = service.name if service else None
        now = time.monotonic()

        def settle(outcome: Outcome, start: float = now, blocked_by: tuple[str, ...] = (),
                   used_origin: str | None = None) -> CheckResult:
            return finalise(check, self.target.name, service_name, outcome, origin=used_origin or origin,
                            start=start, end=time.monotonic(), run_start=runner.started, blocked_by=blocked_by,
                            ready=ready)

        kept = runner.options.carried.get((self.target.name, check.id, service_name))
        if kept is not None:
            return kept
        if check.id in runner.selection.skip:
            return settle(Outcome.skipped("skipped by --skip"))
        blocked = tuple(dep for dep, result in dependencies.items() if not result.status.ok)
        if blocked:
            reasons = "; ".join(f"{dep} is {dependencies[dep].status.value}" for dep in blocked)
            return settle(Outcome.skipped(f"blocked: {reasons}"), blocked_by=blocked)
        remaining = runner.deadline - time.monotonic()
        if remaining <= 0:
            return settle(Outcome.failed(
                f"not started: the run deadline of {runner.options.timeout_s:g} s was reached",
                "Raise --timeout, or look at the slowest checks in the report's timings."))
        budget = min(check.timeout_s, remaining)
        async with runner.semaphore:
            start = time.monotonic()
            runner.progress.started(check, self.target.name, service_name)
            context = Context(config=runner.config, target=self.target, service=service,
                              resources=runner.resources, dependencies=dependencies, origin=origin,
                              observations=runner.observations_for(self.target.name, service_name),
                              observation_origin=runner.options.observation_origins.get(self.target.name, origin),
                              deadline=start + budget)
            try:
                outcome = await within(check.run(context), budget)
            except asyncio.TimeoutError:
                which = "the check's timeout" if budget == check.timeout_s else "the run deadline (--timeout)"
                outcome = Outcome.failed(
                    f"did not finish within {budget:.1f} s ({which})",
                    "The service or API did not answer in time; see the evidence of earlier checks, or "
                    "raise the timeout if the service is known to be slow.", timeout_s=round(budget, 3))
            except Exception as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
                outcome = Outcome(Status.ERROR, f"the check raised {type(exc).__name__}: {exc}",
                                  {"exception": type(exc).__name__, "where": where},
                                  "This is a bug in the check, not in your setup; please report it with the "
                                  "support bundle (preflight bundle).")
            if not isinstance(outcome, Outcome):
                outcome = Outcome(Status.ERROR, f"the check returned {type(outcome).__name__}, not an Outcome")
            if outcome.tokens:
                runner.resources.budget.spend(outcome.tokens, bool(outcome.evidence.get("tokens_estimated")))
            return settle(outcome, start, used_origin=context.used_origin)


class Runner(Generic[TargetT]):
    """Runs a registry's checks over a plan's targets."""

    def __init__(self, config: Plan[TargetT], registry: Registry, selection: Selection | None = None,
                 options: RunOptions | None = None, progress: Progress | None = None, *,
                 describe: Describe[TargetT] = by_name) -> None:
        self.config = config
        self.describe = describe
        self.registry = registry
        self.selection = selection or Selection()
        self.options = options or RunOptions()
        self.progress: Progress = progress or _Silent()
        only = self.selection.only
        self.checks = tuple(check for check in registry.ordered if only is None or check.id in only)
        self.tasks: list[asyncio.Task[None]] = []
        self.started = 0.0
        self.deadline = 0.0
        self.semaphore = asyncio.Semaphore(self.options.concurrency)
        budget = self.options.token_budget
        self.resources = Resources(token_budget=config.max_tokens_budget if budget is None else budget,
                                   checks=frozenset(check.id for check in self.checks) - self.selection.skip)

    def observations_for(self, target: str, service: str | None) -> Mapping[str, Observation] | None:
        if self.options.observations is None:
            return None
        return self.options.observations.get((target, service or ""))

    def targets(self) -> list[TargetT]:
        wanted = self.selection.targets
        return [target for target in self.config.targets if wanted is None or target.name in wanted]

    async def run(self) -> RunReport:
        loop = asyncio.get_running_loop()
        # The system resolver (loop.getaddrinfo) blocks a default-executor thread per name: give many services
        # enough of them instead of cpu_count + 4. Cloud calls have their session's own pool.
        threads = min(MAX_RESOLVER_THREADS, max(8, self.options.concurrency))
        loop.set_default_executor(ThreadPoolExecutor(max_workers=threads,
                                                                        thread_name_prefix="preflight"))
        started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.started = time.monotonic()
        self.deadline = self.started + self.options.timeout_s
        ordered: list[asyncio.Future[CheckResult]] = []
        if self.options.hold is not None:
            await self.options.hold()
        try:
            for target in self.targets():
                ordered.extend(_TargetRun(self, target).schedule())
            # Tasks start as their dependencies settle: wait for every result, then for the tasks themselves.
            await asyncio.gather(*ordered)
            await asyncio.gather(*self.tasks)
        finally:
            for task in self.tasks:
                if not task.done():
                    task.cancel()
            await self.resources.aclose()
        results = tuple(future.result() for future in ordered)
        return RunReport(tool=tool_info(), started_at=started_at,
                         duration_ms=round((time.monotonic() - self.started) * 1000, 3), results=results,
                         config_path=self.config.path, notes=self.options.notes, argv=self.options.argv,
                         targets=tuple(self.describe(target) for target in self.targets()))


def run(config: Plan[TargetT], registry: Registry, selection: Selection | None = None,
        options: RunOptions | None = None, progress: Progress | None = None, *,
        describe: Describe[TargetT] = by_name) -> RunReport:
    """Run synchronously (the CLI's entry point into the engine)."""

    async def main() -> RunReport:
        return await Runner(config, registry, selection, options, progress, describe=describe).run()

    return asyncio.run(main())


__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_RUN_TIMEOUT_S", "Describe", "Progress", "RunOptions", "Runner", "Selection",
           "by_name", "finalise", "platform_name", "run", "tool_info"]
