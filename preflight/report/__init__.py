"""Report formats and the one function that writes them to the report folder."""

from __future__ import annotations

from pathlib import Path

from preflight.engine.model import RunReport
from preflight.report.base import ReportError, ReportFormat

FORMAT_NAMES = ("json", "junit", "markdown", "html")


def formats() -> list[ReportFormat]:
    """Every file format, imported on demand."""
    from preflight.report.html import HtmlFormat
    from preflight.report.json import JsonFormat
    from preflight.report.junit import JunitFormat
    from preflight.report.markdown import MarkdownFormat

    return [JsonFormat(), JunitFormat(), MarkdownFormat(), HtmlFormat()]


def write_reports(run: RunReport, directory: Path) -> list[Path]:
    """Render every format in turn, redact it once more, and replace the previous run's files."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {directory}: {exc.strerror or exc}") from None
    return [_write(report_format, run, directory) for report_format in formats()]


def _write(report_format: ReportFormat, run: RunReport, directory: Path) -> Path:
    from preflight.engine.redact import redact

    path = directory / report_format.filename
    temporary = path.with_suffix(path.suffix + ".tmp")
    try:
        # A lone surrogate (from undecodable bytes a server sent) cannot be UTF-8; it becomes "?".
        temporary.write_text(redact(report_format.render(run)), encoding="utf-8", errors="replace")
        temporary.replace(path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


__all__ = ["FORMAT_NAMES", "ReportError", "ReportFormat", "formats", "write_reports"]
