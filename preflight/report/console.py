"""The console: live progress while a run goes on, then a table, the counts and the first fix in full."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, TextIO

from preflight.model import CheckResult, RunReport, Status
from preflight.redact import redact
from preflight.report.markdown import ordered

if TYPE_CHECKING:
    from preflight.registry import Check

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP", "error": "ERR!"}
COLOURS = {"pass": "32", "warn": "33", "fail": "31", "skip": "90", "error": "35"}
# Control characters (ESC above all) and lone surrogates from a server's answer must not reach a terminal: they could
# recolour, move the cursor, or make the write itself fail.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def terminal_text(text: str, *, lines: bool = False) -> str:
    """`text` safe to print: unprintable characters as U+FFFD, newlines kept only when `lines`."""
    shown = _UNPRINTABLE.sub("\ufffd", text)
    return shown if lines else shown.replace("\n", " ")


class LiveConsole:
    """Progress for a run: a live spinner and bar on a terminal, one plain line per finished check otherwise."""

    def __init__(self, stream: TextIO, *, plain: bool, total: int) -> None:
        self.stream = stream
        self.plain = plain
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str, str | None], Any] = {}
        self._progress: Any = None
        self._bar: Any = None
        if not plain:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), console=Console(file=stream), transient=True)
            self._bar = self._progress.add_task("checks", total=total or None)
            self._progress.start()

    def started(self, check: Check, target: str, service: str | None) -> None:
        if self._progress is None:
            return
        from rich.markup import escape

        subject = terminal_text(target if service is None else f"{target}/{service}")
        with self._lock:
            self._running[(check.id, target, service)] = self._progress.add_task(
                f"[cyan]{escape(subject)}[/] {escape(terminal_text(check.id))}", total=None)

    def finished(self, result: CheckResult) -> None:
        with self._lock:
            self.done += 1
            if self._progress is not None:
                task = self._running.pop((result.check, result.target, result.service), None)
                if task is not None:
                    self._progress.remove_task(task)
                self._progress.update(self._bar, completed=self.done)
                return
        line = terminal_text(f"[{self.done}/{self.total}] {MARKS[result.status.value]} {result.subject} "
                             f"{result.check}: {result.summary}")
        self.stream.write(redact(line) + "\n")
        self.stream.flush()

    def stage(self, subject: str, message: str) -> None:
        """A stage of work that is not a check (an in-network task being submitted, waiting, read back)."""
        line = redact(terminal_text(f"{subject}: {message}"))
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _paint(text: str, status: str, color: bool) -> str:
    return f"\x1b[{COLOURS[status]}m{text}\x1b[0m" if color else text


def render_final(report: RunReport, out: TextIO, *, color: bool) -> None:
    """The table of results (failures first per subject), the counts, notes and the first failure's fix."""
    show_origin = any(result.origin != "local" for result in report.results)
    lines: list[str] = []
    for subject, results in report.by_subject().items():
        lines.append(terminal_text(subject))
        for result in ordered(results):
            mark = _paint(MARKS[result.status.value], result.status.value, color)
            origin = f" [{terminal_text(result.origin)}]" if show_origin else ""
            lines.append(f"  {mark}  {terminal_text(result.check):<30} {terminal_text(result.summary)}{origin}")
    summary = report.summary
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items() if count)
    overall = _paint(summary.status.upper(), "pass" if summary.status == "pass" else "fail", color)
    lines.append("")
    lines.append(f"{overall}: {counts or 'no checks ran'} in {report.duration_ms / 1000:.2f} s"
                 + (f"; {report.tokens} tokens spent" if report.tokens else ""))
    lines.extend(f"note: {terminal_text(note)}" for note in report.notes)
    first = report.first_failure()
    if first is not None:
        lines += ["", terminal_text(f"First problem: {first.check} on {first.subject} ({first.origin})"),
                  "  " + terminal_text(first.summary)]
        if first.remediation:
            lines.append("  Fix: " + terminal_text(first.remediation, lines=True).replace("\n", "\n       "))
        if first.docs:
            lines.append("  Docs: " + terminal_text(first.docs))
    else:
        warned = next((r for r in report.results if r.status is Status.WARN), None)
        if warned is not None and warned.remediation:
            lines += ["", terminal_text(f"First warning: {warned.check} on {warned.subject}: {warned.summary}"),
                      "  Advice: " + terminal_text(warned.remediation, lines=True).replace("\n", "\n          ")]
    out.write(redact("\n".join(lines)) + "\n")


__all__ = ["LiveConsole", "render_final", "terminal_text"]
