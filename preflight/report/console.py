"""The console: live progress while a run goes on, then a table, the counts and the first fix in full."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, TextIO

from preflight.engine.model import CheckResult, RunReport, Status
from preflight.engine.redact import redact
from preflight.report.base import affected, count_of, placements, root_causes, waiver_note

if TYPE_CHECKING:
    from preflight.engine.registry import Check

MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP", "error": "ERR!", "waived": "WAIV"}
STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "bright_black", "error": "bold magenta",
          "waived": "cyan"}
CHECK_WIDTH = 30
# Rows for running checks while a run goes on; checks beyond them are counted on the bar. The rows are made once and
# shown or hidden: rich redraws every row when a task is added, which a row per check of a fleet made quadratic.
LIVE_ROWS = 10
# Control characters (ESC above all) and lone surrogates from a server's answer must not reach a terminal: they could
# recolour, move the cursor, or make the write itself fail.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def terminal_text(text: str, *, lines: bool = False) -> str:
    """`text` safe to print: unprintable characters as U+FFFD, newlines kept only when `lines`."""
    shown = _UNPRINTABLE.sub("\ufffd", text)
    return shown if lines else shown.replace("\n", " ")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in counts.items() if count)


class LiveConsole:
    """Progress for a run: a live spinner and bar on a terminal; otherwise a line per finished check that failed,
    warned or was blocked, and the counts at the end, so that a healthy run's CI log is short."""

    def __init__(self, stream: TextIO, *, plain: bool, total: int) -> None:
        self.stream = stream
        self.plain = plain
        self.total = total
        self.done = 0
        self.counts = {status.value: 0 for status in Status}
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str, str | None], Any] = {}  # the row of each check that has one
        self._free_rows: list[Any] = []
        self._unshown: set[tuple[str, str, str | None]] = set()  # running checks without a row
        self._progress: Any = None
        self._bar: Any = None
        if not plain:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), console=Console(file=stream), transient=True)
            self._bar = self._progress.add_task("checks", total=total or None)
            self._progress.start()
            self._free_rows = [self._progress.add_task("", total=None, visible=False) for _ in range(LIVE_ROWS)]

    def started(self, check: Check, target: str, service: str | None) -> None:
        if self._progress is None:
            return
        from rich.markup import escape

        subject = terminal_text(target if service is None else f"{target}/{service}")
        with self._lock:
            key = (check.id, target, service)
            if self._free_rows:
                row = self._running[key] = self._free_rows.pop()
                self._progress.update(row, description=f"[cyan]{escape(subject)}[/] {escape(terminal_text(check.id))}",
                                      visible=True)
            else:
                self._unshown.add(key)
                self._progress.update(self._bar, description=self._bar_label())

    def finished(self, result: CheckResult) -> None:
        with self._lock:
            self.done += 1
            self.counts[result.status.value] += 1
            if self._progress is not None:
                key = (result.check, result.target, result.service)
                row = self._running.pop(key, None)
                if row is not None:
                    self._progress.update(row, visible=False)
                    self._free_rows.append(row)
                self._unshown.discard(key)
                self._progress.update(self._bar, completed=self.done, description=self._bar_label())
                return
        if not _a_problem(result):
            return  # a pass, or a check that does not apply (another kind of service, --skip): counted at the end
        line = terminal_text(f"[{self.done}/{self.total}] {MARKS[result.status.value]} {result.subject} "
                             f"{result.check}: {result.summary}")
        self.stream.write(redact(line) + "\n")
        self.stream.flush()

    def _bar_label(self) -> str:
        return f"checks (and {len(self._unshown)} more running)" if self._unshown else "checks"

    def stage(self, subject: str, message: str) -> None:
        """A stage of work that is not a check (an in-network task being submitted, waiting, read back)."""
        line = redact(terminal_text(f"{subject}: {message}"))
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Stop the spinner; in plain mode, say how many checks finished (once, however often it is called)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self.plain and self.done:
            self.stream.write(f"{self.done} check{'' if self.done == 1 else 's'} finished: {_counts(self.counts)}\n")
            self.stream.flush()
            self.plain = False


Row = tuple[str, str, str, str]  # status, check label, summary, origin


def table(report: RunReport) -> list[tuple[str, list[Row]]]:
    """The final table's blocks, one per target and service, each check in chain order.

    A problem (a failure, warning, error or blocked skip) that several services of one target share, the same
    check with the same status, is one row in the target's block ("3 services: network.model_allowlist"), and is
    left out of those services' blocks.
    """
    blocks: list[tuple[str, list[Row]]] = []
    by_subject = report.by_subject()
    for target in dict.fromkeys(result.target for result in report.results):
        services = [results for results in by_subject.values() if results[0].target == target
                    and results[0].service is not None]
        shared: dict[tuple[str, Status], list[CheckResult]] = {}
        for results in services:
            for result in results:
                if _a_problem(result):
                    shared.setdefault((result.check, result.status), []).append(result)
        grouped = {key: found for key, found in shared.items() if len(found) > 1}
        rows = [_row(result) for result in by_subject.get(target, [])]
        for found in grouped.values():
            which = "" if len(found) == len(services) else f" ({', '.join(r.service or '' for r in found)})"
            rows.append(_row(found[0], f"{count_of(found)}{which}: {found[0].check}"))
        if rows:
            blocks.append((terminal_text(target), rows))
        for results in services:
            kept = [_row(result) for result in results if (result.check, result.status) not in grouped]
            if kept:
                blocks.append((terminal_text(results[0].subject), kept))
    return blocks


def _a_problem(result: CheckResult) -> bool:
    """Whether a result is a problem or a consequence of one (not a pass, nor a check that does not apply)."""
    return result.status is not Status.PASS and (result.status is not Status.SKIP or bool(result.blocked_by))


def _row(result: CheckResult, label: str | None = None) -> Row:
    summary = f"{result.summary} [{waiver_note(result)}]" if result.waiver else result.summary
    return (result.status.value, terminal_text(label or result.check), terminal_text(summary),
            terminal_text(result.origin))


def _closing(report: RunReport) -> list[str]:
    """The counts, the notes, and the first problem (every subject it affects) or else the first warning."""
    summary = report.summary
    lines = ["", f"{summary.status.upper()}: {_counts(dict(summary.counts)) or 'no checks ran'} in "
                 f"{report.duration_ms / 1000:.2f} s" + (f"; {report.tokens} tokens spent" if report.tokens else "")]
    places = placements(report)
    if places:
        lines.append("By region / workspace / resource group:")
        lines.extend(terminal_text(f"  {place.label}: {place.tally}") for place in places)
    lines.extend(f"note: {terminal_text(note)}" for note in report.notes)
    causes = root_causes(report)
    if causes:
        cause = causes[0]
        first = cause.first
        lines += ["", terminal_text(f"First problem: {first.check} on {affected(cause)} ({first.origin})"),
                  "  " + terminal_text(first.summary)]
        if first.remediation:
            lines.append("  Fix: " + terminal_text(first.remediation, lines=True).replace("\n", "\n       "))
        if first.docs:
            lines.append("  Docs: " + terminal_text(first.docs))
        if len(causes) > 1:
            lines.append(f"  ({len(causes) - 1} more problem{'s' if len(causes) > 2 else ''}: "
                         + ", ".join(other.check for other in causes[1:]) + "; see the reports)")
    else:
        warned = next((r for r in report.results if r.status is Status.WARN), None)
        if warned is not None and warned.remediation:
            lines += ["", terminal_text(f"First warning: {warned.check} on {warned.subject}: {warned.summary}"),
                      "  Advice: " + terminal_text(warned.remediation, lines=True).replace("\n", "\n          ")]
    return lines


def render_final(report: RunReport, out: TextIO, *, color: bool) -> None:
    """The table of results, the counts, notes and the first problem's fix: rich's table on a terminal (or with
    `color`), plain text otherwise."""
    blocks = table(report)
    show_origin = any(result.origin != "local" for result in report.results)
    if color:
        out.write(redact(_rich(report, blocks, show_origin)))
        return
    width = max([CHECK_WIDTH, *(len(row[1]) for _, rows in blocks for row in rows)])
    lines: list[str] = []
    for heading, rows in blocks:
        lines.append(heading)
        for status, label, text, origin in rows:
            lines.append(f"  {MARKS[status]}  {label:<{width}} {text}" + (f" [{origin}]" if show_origin else ""))
    lines += _closing(report)
    out.write(redact("\n".join(lines)) + "\n")


def _rich(report: RunReport, blocks: list[tuple[str, list[Row]]], show_origin: bool) -> str:
    """The final output drawn by rich, as text with its colour codes."""
    import io
    import shutil

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    grid.add_column("subject", style="bold", no_wrap=True)
    grid.add_column("status", no_wrap=True)
    grid.add_column("check", no_wrap=True)
    grid.add_column("summary", overflow="fold")
    if show_origin:
        grid.add_column("origin", no_wrap=True)
    for heading, rows in blocks:
        for index, (status, label, text, origin) in enumerate(rows):
            grid.add_row(Text(redact(heading) if index == 0 else ""), Text(MARKS[status], style=STYLES[status]),
                         Text(redact(label)), Text(redact(text)), *([Text(origin)] if show_origin else []),
                         end_section=index == len(rows) - 1)
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard",
                      width=max(shutil.get_terminal_size().columns, 60),
                      highlight=False, emoji=False, markup=False)
    console.print(grid)
    closing = _closing(report)
    overall = report.summary.status
    for line in closing:
        shown = Text(redact(line))
        if line.startswith(overall.upper() + ":"):
            shown.stylize(STYLES["pass" if overall == "pass" else "fail"], 0, len(overall))
        console.print(shown)
    return buffer.getvalue()


__all__ = ["LiveConsole", "render_final", "table", "terminal_text"]
