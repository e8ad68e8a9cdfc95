"""The report-format interface (a format renders a run to text and never writes files) and what formats share."""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from preflight.engine.model import CheckResult, RunReport, Status
from preflight.errors import PreflightError


class ReportError(PreflightError):
    """A report could not be rendered or written."""


class ReportFormat(abc.ABC):
    """One output format: a name, the file it is written to, and a pure render function."""

    name: str = ""
    filename: str = ""

    @abc.abstractmethod
    def render(self, run: RunReport) -> str:
        """The whole document for `run`."""


@dataclass(frozen=True, slots=True)
class RootCause:
    """One check failing the same way (same status) for one or more subjects: one thing to fix."""

    check: str
    status: Status
    results: tuple[CheckResult, ...]

    @property
    def first(self) -> CheckResult:
        return self.results[0]

    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(result.subject for result in self.results)


def root_causes(run: RunReport) -> list[RootCause]:
    """Failures, then errors, each check once with every subject it fails for, in the run's order.

    A check that fails is never downstream of another failure (that one would have made it a skip), so each
    of these is a cause of its own; several services failing one check usually share it (the first VPC).
    """
    grouped: dict[tuple[Status, str], list[CheckResult]] = {}
    for status in (Status.FAIL, Status.ERROR):
        for result in run.results:
            if result.status is status:
                grouped.setdefault((status, result.check), []).append(result)
    return [RootCause(check, status, tuple(results)) for (status, check), results in grouped.items()]


def waiver_note(result: CheckResult) -> str:
    """`waived fail until 2027-01-31 (OPS-123): the PrivateLink endpoint is being replaced`, or ""."""
    waiver = result.waiver
    if not waiver:
        return ""
    ticket = f" ({waiver['ticket']})" if waiver.get("ticket") else ""
    status, until = waiver.get("original_status", "?"), waiver.get("until", "?")
    return f"waived {status} until {until}{ticket}: {waiver.get('reason', '')}"


def count_of(results: tuple[CheckResult, ...] | list[CheckResult]) -> str:
    """`3 services`, `2 targets` or `4 subjects` (services and targets mixed)."""
    services = sum(result.service is not None for result in results)
    noun = "services" if services == len(results) else "targets" if services == 0 else "subjects"
    return f"{len(results)} {noun}"


def affected(cause: RootCause) -> str:
    """`prod/qwen`, or `3 services: prod/a, prod/b, prod/c` when the cause is shared."""
    if len(cause.results) == 1:
        return cause.first.subject
    return f"{count_of(cause.results)}: {', '.join(cause.subjects)}"


@dataclass(frozen=True, slots=True)
class Placement:
    """The targets of one region, workspace and resource group, and how their results came out."""

    region: str
    workspace: str
    resource_group: str
    targets: tuple[str, ...]
    counts: dict[str, int]

    @property
    def label(self) -> str:
        return f"{self.region} / {self.workspace} / {self.resource_group}"

    @property
    def tally(self) -> str:
        """`3 targets: 40 pass, 2 fail`."""
        counts = ", ".join(f"{count} {status}" for status, count in self.counts.items() if count)
        return f"{len(self.targets)} target{'' if len(self.targets) == 1 else 's'}: {counts or 'no results'}"


def placements(run: RunReport) -> list[Placement]:
    """The run's results by region, workspace and resource group, in config order; empty when the run has only one
    of them (a fleet's report groups, a single target's does not)."""
    places: dict[tuple[str, str, str], list[str]] = {}
    for target in run.targets:
        region, workspace, group = (str(target.get(name) or "-") for name in ("region", "workspace", "resource_group"))
        places.setdefault((region, workspace, group), []).append(str(target.get("name")))
    if len(places) < 2:
        return []
    statuses: dict[str, dict[str, int]] = {}
    for result in run.results:
        tally = statuses.setdefault(result.target, {})
        tally[result.status.value] = tally.get(result.status.value, 0) + 1
    found = []
    for (region, workspace, group), names in places.items():
        counts = {status.value: sum(statuses.get(name, {}).get(status.value, 0) for name in names) for status in Status}
        found.append(Placement(region, workspace, group, tuple(names), counts))
    return found


_STRICT = json.JSONEncoder(allow_nan=False).encode
# ", " and ": " as json.dumps(indent=...) writes them; the C encoder is used only when there is no indent.
encode_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": ")).encode
_STRING = json.encoder.encode_basestring  # what encode_json writes for a str, without setting up an encoder


def plain(value: Any) -> Any:
    """Evidence as strict JSON: NaN and infinities become strings, bytes text, unknown objects their str().

    Evidence that the strict C encoder takes as it is (nearly all of it) is returned as it is: walking it in
    Python cost more than encoding it. Dict keys that are None or booleans are the one difference this makes
    (null/true against "None"/"True"); evidence keys are strings.
    """
    if isinstance(value, dict):
        try:
            _STRICT(value)
        except (TypeError, ValueError):
            return _plain(value)
        return value
    return _plain(value)


def _plain(value: Any) -> Any:
    # json.dumps would write NaN/Infinity, which strict parsers (and the schema) reject.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def fields(value: Any) -> str:
    """Strict JSON of `value` (see `plain`), one top-level field per line when it is an object.

    An object is encoded field by field as it is, and only through `plain` when that is refused: checking it
    with a strict encoding first encoded every evidence twice. Strings, most fields, go to the C string encoder
    directly; a JSONEncoder.encode call sets up an encoder each time.
    """
    if isinstance(value, dict) and value and all(type(key) is str for key in value):
        try:
            return _object_lines(value)
        except (TypeError, ValueError):
            pass
    value = plain(value)
    if isinstance(value, dict) and value:
        return _object_lines(value)
    return encode_json(value)


def _object_lines(value: dict[Any, Any]) -> str:
    return "{\n" + ",\n".join(f"  {_STRING(key) if type(key) is str else encode_json(key)}: "
                               f"{_STRING(item) if type(item) is str else encode_json(item)}"
                               for key, item in value.items()) + "\n}"


__all__ = ["Placement", "ReportError", "ReportFormat", "RootCause", "affected", "count_of", "encode_json", "fields",
           "placements", "plain", "root_causes", "waiver_note"]
