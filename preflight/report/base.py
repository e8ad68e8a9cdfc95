"""The report-format interface: a format renders a run to text and never writes files."""

from __future__ import annotations

import abc
import time
from collections import deque

from preflight.errors import PreflightError
from preflight.model import CheckResult, RunReport


class ReportError(PreflightError):
    """A report could not be rendered or written."""


class ReportFormat(abc.ABC):
    """One output format: a name, the file it is written to, and a pure render function."""

    name: str = ""
    filename: str = ""

    @abc.abstractmethod
    def render(self, run: RunReport, pieces: Pieces | None = None) -> str:
        """The whole document for `run`; a result's piece comes from `pieces` when it was rendered already."""

    def piece(self, result: CheckResult) -> str | None:
        """The part of the document that depends on `result` alone, if the format has one (else None)."""
        return None

    def piece_of(self, result: CheckResult, pieces: Pieces | None) -> str:
        """`piece(result)`, taken from `pieces` when it was rendered while the run went on."""
        text = pieces.get(self.name, result) if pieces is not None else None
        if text is None:
            text = self.piece(result)
            assert text is not None, f"the {self.name} format has no pieces"
        return text


class Pieces:
    """Each finished result's pieces of the report files, rendered while the run waits on the network.

    A large run's reports cost a few hundred milliseconds of CPU after its last check, most of it one piece
    per result (a line of report.json, a testcase of junit.xml, a row of report.md and of report.html). A result
    never changes once it is finished, so the run's progress hands every result here (`add`), and the event loop
    renders their pieces in the moments it would only wait (`pending` and `work`, see preflight.aio). At the end,
    the formats take the pieces done and render the rest; the documents are the same either way, and are
    redacted as a whole all the same.
    """

    def __init__(self, formats: list[ReportFormat] | None = None) -> None:
        self._formats = formats
        self._queue: deque[CheckResult] = deque()
        self._done: dict[int, tuple[CheckResult, dict[str, str]]] = {}

    def add(self, result: CheckResult) -> None:
        self._queue.append(result)

    def pending(self) -> bool:
        return bool(self._queue)

    def work(self, budget_s: float) -> None:
        """Render queued results' pieces until `budget_s` has passed (at least one result's)."""
        if self._formats is None:
            from preflight.report import formats

            self._formats = formats()
        end = time.perf_counter() + budget_s
        while self._queue:
            result = self._queue.popleft()
            done = {}
            for report_format in self._formats:
                text = report_format.piece(result)
                if text is not None:
                    done[report_format.name] = text
            self._done[id(result)] = (result, done)
            if time.perf_counter() >= end:
                return

    def get(self, name: str, result: CheckResult) -> str | None:
        """The piece of format `name` for this very result, if it was rendered."""
        found = self._done.get(id(result))
        if found is None or found[0] is not result:
            return None
        return found[1].get(name)

    def rendered(self) -> int:
        """How many results' pieces are done (not `__len__`: an empty Pieces must still count as given)."""
        return len(self._done)


__all__ = ["Pieces", "ReportError", "ReportFormat"]
