"""Report formats and the one function that writes them to the report folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from preflight.model import RunReport
from preflight.report.base import Pieces, ReportError, ReportFormat
from preflight.text import shorten

FORMAT_NAMES = ("json", "junit", "markdown", "html")


def formats() -> list[ReportFormat]:
    """Every file format, imported on demand."""
    from preflight.report.html import HtmlFormat
    from preflight.report.json import JsonFormat
    from preflight.report.junit import JunitFormat
    from preflight.report.markdown import MarkdownFormat

    return [JsonFormat(), JunitFormat(), MarkdownFormat(), HtmlFormat()]


# From this many results, a forked child writes the HTML file while this process writes the other three.
PARALLEL_FROM = 300


def write_reports(run: RunReport, directory: Path, *, parallel: bool | None = None, pieces: Pieces | None = None
                  ) -> list[Path]:
    """Render every format, redact it once more, and replace the previous run's files.

    A large run's reports cost a few hundred milliseconds of CPU after the last check is done. Where the OS can
    fork (Linux), the HTML file is written by a child process on another core meanwhile; its
    failure to write is this call's ReportError all the same. `parallel` forces the choice (tests compare both ways).
    `pieces` holds the results' pieces rendered while the run went on (see Pieces); the files are the same.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {directory}: {exc.strerror or exc}") from None
    every = formats()
    if parallel is None:
        parallel = len(run.results) >= PARALLEL_FROM
    if not (parallel and sys.platform.startswith("linux") and hasattr(os, "fork")):
        return [_write(report_format, run, directory, pieces) for report_format in every]
    # The HTML page is the largest render (about 130 ms at 100 services): as long as the three others together.
    here = [report_format for report_format in every if report_format.name != "html"]
    there = [report_format for report_format in every if report_format not in here]
    read_end, write_end = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        stream.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected; its files are checked by tests
        os.close(read_end)
        code = 0
        try:
            for report_format in there:
                _write(report_format, run, directory, pieces)
        except BaseException as exc:
            os.write(write_end, shorten(str(exc), 2000).encode("utf-8", "replace"))
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        for report_format in here:
            _write(report_format, run, directory, pieces)
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            problem = pipe.read().decode("utf-8", "replace")
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ReportError(problem or f"the process writing {', '.join(f.filename for f in there)} failed")
    return [directory / report_format.filename for report_format in every]


def _write(report_format: ReportFormat, run: RunReport, directory: Path, pieces: Pieces | None = None) -> Path:
    from preflight.redact import redact

    path = directory / report_format.filename
    temporary = path.with_suffix(path.suffix + ".tmp")
    try:
        # A lone surrogate (from undecodable bytes a server sent) cannot be UTF-8; it becomes "?".
        temporary.write_text(redact(report_format.render(run, pieces)), encoding="utf-8", errors="replace")
        temporary.replace(path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


__all__ = ["FORMAT_NAMES", "PARALLEL_FROM", "Pieces", "ReportError", "ReportFormat", "formats", "write_reports"]
