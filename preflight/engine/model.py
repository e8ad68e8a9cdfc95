"""The result model: statuses, outcomes, check results and run reports, all frozen dataclasses."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """The verdict of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"
    # A fail or warn that a waiver in the config accepts until a date; the result keeps its original status.
    WAIVED = "waived"

    @property
    def ok(self) -> bool:
        """Whether checks that depend on this one may run."""
        return self in (Status.PASS, Status.WARN)


STATUS_ORDER: tuple[Status, ...] = (Status.FAIL, Status.ERROR, Status.WARN, Status.WAIVED, Status.SKIP, Status.PASS)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check function or a judge returns; the runner adds identity and timings."""

    status: Status
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    remediation: str = ""
    docs: str = ""
    tokens: int = 0

    @classmethod
    def passed(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.PASS, summary, evidence)

    @classmethod
    def warned(cls, summary: str, remediation: str = "", **evidence: Any) -> Outcome:
        return cls(Status.WARN, summary, evidence, remediation)

    @classmethod
    def failed(cls, summary: str, remediation: str = "", **evidence: Any) -> Outcome:
        return cls(Status.FAIL, summary, evidence, remediation)

    @classmethod
    def skipped(cls, summary: str, **evidence: Any) -> Outcome:
        return cls(Status.SKIP, summary, evidence)


@dataclass(frozen=True, slots=True)
class Timings:
    """When a check became ready to run and when its own work started, relative to the run's start, and how long
    that work took, in milliseconds; the time between ready and start is spent queued (for a concurrency slot,
    or for the event loop's turn)."""

    start_ms: float = 0.0
    duration_ms: float = 0.0
    ready_ms: float | None = None  # None: as start_ms (not queued, or not recorded)

    @property
    def queued_ms(self) -> float:
        """How long the check waited between becoming ready and starting its own work."""
        return 0.0 if self.ready_ms is None else max(0.0, self.start_ms - self.ready_ms)


_NO_TIMINGS = Timings()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict for one target (and service, for service-scoped checks)."""

    check: str
    title: str
    target: str
    service: str | None
    status: Status
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    remediation: str = ""
    docs: str = ""
    blocked_by: tuple[str, ...] = ()
    origin: str = "local"
    timings: Timings = _NO_TIMINGS
    tokens: int = 0
    # Set when a waiver turned this result's fail or warn into `waived`: the original status, the waiver's
    # reason, until, ticket and the pattern that matched.
    waiver: Mapping[str, Any] | None = None

    @property
    def subject(self) -> str:
        """`target` or `target/service`, the name a person reads in a report."""
        return self.target if self.service is None else f"{self.target}/{self.service}"


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts per status and the overall verdict of a run."""

    status: str
    counts: Mapping[str, int]

    @classmethod
    def of(cls, results: tuple[CheckResult, ...]) -> Summary:
        counts = {status.value: 0 for status in Status}
        for result in results:
            counts[result.status.value] += 1
        overall = "fail" if counts["fail"] or counts["error"] else "pass"
        return cls(overall, counts)


@dataclass(frozen=True, slots=True, repr=False)
class RunReport:
    """Everything one invocation found, in a stable order."""

    tool: Mapping[str, str]
    started_at: str
    duration_ms: float
    results: tuple[CheckResult, ...]
    config_path: str | None = None
    notes: tuple[str, ...] = ()
    # The command line as typed, secrets masked (`preflight run -c prod.yaml`); empty when not run from one.
    argv: tuple[str, ...] = ()
    # What each target covers, as the config names it ({"name": ..., "region": ..., "workspace": ...}).
    targets: tuple[Mapping[str, str | None], ...] = ()
    # With `run --wait`: the rounds, when each check first passed, and why the wait stopped (see preflight.cli.wait).
    wait: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        # Short: asyncio formats the finished main task, result and all, when `asyncio.run` puts back the SIGINT
        # handler, and a full repr walks every result of the run to be cut to a few characters.
        return f"<RunReport of {len(self.targets)} target(s), {len(self.results)} result(s)>"

    @property
    def summary(self) -> Summary:
        return Summary.of(self.results)

    @property
    def tokens(self) -> int:
        return sum(result.tokens for result in self.results)

    def subjects(self) -> list[str]:
        """Targets and services in first-seen order."""
        return list(self.by_subject())

    def by_subject(self) -> dict[str, list[CheckResult]]:
        """Each target and service, in first-seen order, with its results in run order: one pass, not one a subject."""
        groups: dict[str, list[CheckResult]] = {}
        for result in self.results:
            groups.setdefault(result.subject, []).append(result)
        return groups

    def first_failure(self) -> CheckResult | None:
        for status in (Status.FAIL, Status.ERROR):
            for result in self.results:
                if result.status is status:
                    return result
        return None
