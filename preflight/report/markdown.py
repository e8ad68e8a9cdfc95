"""report.md: a readable report for tickets and pull requests, failures first."""

from __future__ import annotations

from preflight.model import STATUS_ORDER, CheckResult, RunReport
from preflight.report.base import Pieces, ReportFormat

ICONS = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "skip": "⏭️ skip", "error": "💥 error"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def ordered(results: list[CheckResult]) -> list[CheckResult]:
    """Failures first, then errors, warnings, skips and passes; the run's order within each."""
    return sorted(results, key=lambda r: STATUS_ORDER.index(r.status))


class MarkdownFormat(ReportFormat):
    """Markdown with a summary, the fix to make first, and a table per target/service."""

    name = "markdown"
    filename = "report.md"

    def render(self, run: RunReport, pieces: Pieces | None = None) -> str:
        summary = run.summary
        counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items())
        lines = [
            "# dw-preflight report", "",
            f"**{summary.status.upper()}** — {counts}; {len(run.results)} results in {run.duration_ms / 1000:.2f} s "
            f"(started {run.started_at}, dw-preflight {run.tool.get('version', '?')}).", "",
        ]
        if run.config_path:
            lines += [f"Config: `{run.config_path}`", ""]
        if run.tokens:
            lines += [f"Tokens spent: {run.tokens}", ""]
        for note in run.notes:
            lines.append(f"> {note}")
        if run.notes:
            lines.append("")
        first = run.first_failure()
        if first is not None:
            lines += ["## Fix first", "", f"**{first.check}** on `{first.subject}` ({first.origin}): {first.summary}",
                      ""]
            if first.remediation:
                lines += [first.remediation, ""]
            if first.docs:
                lines += [f"Docs: {first.docs}", ""]
        for subject, found in run.by_subject().items():
            results = ordered(found)
            lines += [f"## {subject}", "", "| status | check | summary | fix | origin |", "|---|---|---|---|---|"]
            lines += [self.piece_of(result, pieces) for result in results]
            lines.append("")
        return "\n".join(lines)

    def piece(self, result: CheckResult) -> str:
        """The result's row of its subject's table."""
        fix = result.remediation if result.status.value in ("fail", "error", "warn") else ""
        if result.blocked_by:
            fix = "blocked by " + ", ".join(f"`{dep}`" for dep in result.blocked_by)
        return (f"| {ICONS[result.status.value]} | `{result.check}` | {_cell(result.summary)} | {_cell(fix)} | "
                f"{result.origin} |")


__all__ = ["MarkdownFormat", "ordered"]
