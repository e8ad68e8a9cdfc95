"""The result model: statuses, outcomes, check results and run reports, all frozen."""

from __future__ import annotations

import enum
from collections.abc import Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    from typing import Any, ClassVar


class Record:
    """A frozen value: compared, hashed and printed by its fields, as `@dataclass(frozen=True)` would make it.

    The dataclasses module imports inspect (ast, dis, tokenize): about 10 ms, a fifth of `preflight list`, which
    imports this module and the check specs and nothing else of the run. A subclass annotates its fields, names
    them again in `__slots__` (where they are stored), and sets them in `__init__` with `self._init(...)`.
    Fields named in `_hidden` are left out of comparison, hashing and repr (a check's function, for example).
    """

    __slots__: tuple[str, ...] = ()
    _hidden: ClassVar[tuple[str, ...]] = ()
    _fields: ClassVar[tuple[str, ...]] = ()  # compared and shown, in the order they are annotated

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        annotated = tuple(cls.__dict__.get("__annotations__", ()))  # noqa: RUF063 (inspect is what this avoids)
        if annotated:
            if set(annotated) != set(cls.__slots__):
                raise TypeError(f"{cls.__name__}: the annotated fields and __slots__ differ")
            cls._fields = tuple(name for name in annotated if name not in cls._hidden)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({shown})"

    def _init(self, **fields: Any) -> None:
        """Set the fields, for a subclass's `__init__` (the only way past `__setattr__`)."""
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field '{name}': {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': {type(self).__name__} is frozen")



class Status(str, enum.Enum):
    """The verdict of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"

    @property
    def ok(self) -> bool:
        """Whether checks that depend on this one may run."""
        return self in (Status.PASS, Status.WARN)


STATUS_ORDER: tuple[Status, ...] = (Status.FAIL, Status.ERROR, Status.WARN, Status.SKIP, Status.PASS)


class Outcome(Record):
    """What a check function or a judge returns; the runner adds identity and timings."""

    __slots__ = ("docs", "evidence", "remediation", "status", "summary", "tokens")
    status: Status
    summary: str
    evidence: Mapping[str, Any]
    remediation: str
    docs: str
    tokens: int

    def __init__(self, status: Status, summary: str, evidence: Mapping[str, Any] | None = None,
                 remediation: str = "", docs: str = "", tokens: int = 0) -> None:
        self._init(status=status, summary=summary, evidence={} if evidence is None else evidence,
                   remediation=remediation, docs=docs, tokens=tokens)

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


class Timings(Record):
    """When a check started, relative to the run's start, and how long it took, in milliseconds."""

    __slots__ = ("duration_ms", "start_ms")
    start_ms: float
    duration_ms: float

    def __init__(self, start_ms: float = 0.0, duration_ms: float = 0.0) -> None:
        self._init(start_ms=start_ms, duration_ms=duration_ms)


_NO_TIMINGS = Timings()


class CheckResult(Record):
    """One check's verdict for one target (and service, for service-scoped checks)."""

    __slots__ = (
        "blocked_by",
        "check",
        "docs",
        "evidence",
        "origin",
        "remediation",
        "service",
        "status",
        "summary",
        "target",
        "timings",
        "title",
        "tokens",
    )
    check: str
    title: str
    target: str
    service: str | None
    status: Status
    summary: str
    evidence: Mapping[str, Any]
    remediation: str
    docs: str
    blocked_by: tuple[str, ...]
    origin: str
    timings: Timings
    tokens: int

    def __init__(self, check: str, title: str, target: str, service: str | None, status: Status, summary: str,
                 evidence: Mapping[str, Any] | None = None, remediation: str = "", docs: str = "",
                 blocked_by: tuple[str, ...] = (), origin: str = "local", timings: Timings = _NO_TIMINGS,
                 tokens: int = 0) -> None:
        self._init(check=check, title=title, target=target, service=service, status=status, summary=summary,
                   evidence={} if evidence is None else evidence, remediation=remediation, docs=docs,
                   blocked_by=blocked_by, origin=origin, timings=timings, tokens=tokens)

    @property
    def subject(self) -> str:
        """`target` or `target/service`, the name a person reads in a report."""
        return self.target if self.service is None else f"{self.target}/{self.service}"


class Summary(Record):
    """Counts per status and the overall verdict of a run."""

    __slots__ = ("counts", "status")
    status: str
    counts: Mapping[str, int]

    def __init__(self, status: str, counts: Mapping[str, int]) -> None:
        self._init(status=status, counts=counts)

    @classmethod
    def of(cls, results: tuple[CheckResult, ...]) -> Summary:
        counts = {status.value: 0 for status in Status}
        for result in results:
            counts[result.status.value] += 1
        overall = "fail" if counts["fail"] or counts["error"] else "pass"
        return cls(overall, counts)


class RunReport(Record):
    """Everything one invocation found, in a stable order."""

    __slots__ = ("config_path", "duration_ms", "notes", "results", "started_at", "tool")
    tool: Mapping[str, str]
    started_at: str
    duration_ms: float
    results: tuple[CheckResult, ...]
    config_path: str | None
    notes: tuple[str, ...]

    def __init__(self, tool: Mapping[str, str], started_at: str, duration_ms: float, results: tuple[CheckResult, ...],
                 config_path: str | None = None, notes: tuple[str, ...] = ()) -> None:
        self._init(tool=tool, started_at=started_at, duration_ms=duration_ms, results=results, config_path=config_path,
                   notes=notes)

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
