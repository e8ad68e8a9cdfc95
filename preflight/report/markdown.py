"""report.md: a readable report for tickets and pull requests, the fixes to make first, then each subject's checks."""

from __future__ import annotations

from preflight.engine.model import CheckResult, RunReport
from preflight.report.base import ReportFormat, affected, placements, root_causes, waiver_note

ICONS = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "skip": "⏭️ skip", "error": "💥 error",
         "waived": "🏷️ waived"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(result: CheckResult) -> str:
    """The result's row of its subject's table."""
    fix = result.remediation if result.status.value in ("fail", "error", "warn") else ""
    if result.blocked_by:
        fix = "blocked by " + ", ".join(f"`{dep}`" for dep in result.blocked_by)
    if result.waiver:
        fix = waiver_note(result)
    return (f"| {ICONS[result.status.value]} | `{result.check}` | {_cell(result.summary)} | {_cell(fix)} | "
            f"{result.origin} |")


class MarkdownFormat(ReportFormat):
    """Markdown with a summary, the fixes to make first (one per root cause), and a table per target/service."""

    name = "markdown"
    filename = "report.md"

    def render(self, run: RunReport) -> str:
        summary = run.summary
        # Every status's count, as always; `waived` only when a waiver waived something (most configs have none).
        counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items()
                           if count or status != "waived")
        lines = [
            "# dw-preflight report", "",
            f"**{summary.status.upper()}** — {counts}; {len(run.results)} results in {run.duration_ms / 1000:.2f} s "
            f"(started {run.started_at}, dw-preflight {run.tool.get('version', '?')}).", "",
        ]
        if run.argv:
            lines += [f"Command: `{' '.join(run.argv)}`", ""]
        if run.config_path:
            lines += [f"Config: `{run.config_path}`", ""]
        if run.tokens:
            lines += [f"Tokens spent: {run.tokens}", ""]
        for note in run.notes:
            lines.append(f"> {note}")
        if run.notes:
            lines.append("")
        causes = root_causes(run)
        if causes:
            lines += ["## Fix first", ""]
        for cause in causes:
            first = cause.first
            lines += [f"**{cause.check}** ({cause.status.value}) on `{affected(cause)}` ({first.origin}): "
                      f"{first.summary}", ""]
            if first.remediation:
                lines += [first.remediation, ""]
            if first.docs:
                lines += [f"Docs: {first.docs}", ""]
        places = placements(run)
        if places:
            lines += ["## By region, workspace and resource group", "", "| region / workspace / resource group | "
                      "results | targets |", "|---|---|---|"]
            lines += [f"| {_cell(place.label)} | {_cell(place.tally)} | {_cell(', '.join(place.targets))} |"
                      for place in places]
            lines.append("")
        for subject, results in run.by_subject().items():
            lines += [f"## {subject}", "", "| status | check | summary | fix | origin |", "|---|---|---|---|---|"]
            lines += [_row(result) for result in results]
            lines.append("")
        return "\n".join(lines)


__all__ = ["MarkdownFormat"]
