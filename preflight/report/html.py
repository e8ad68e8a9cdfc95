"""report.html: one self-contained page for a support ticket, with a timing waterfall per service."""

from __future__ import annotations

from html import escape as _escape

from preflight.model import CheckResult, RunReport
from preflight.report.base import Pieces, ReportFormat
from preflight.report.json import fields
from preflight.report.markdown import ordered

COLOURS = {"pass": "#2e7d32", "warn": "#ef8c00", "fail": "#c62828", "skip": "#9e9e9e", "error": "#6a1b9a"}
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1c1e21}
header{background:#1f2937;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
main{padding:18px 28px;max-width:1200px}section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;
padding:14px 18px;margin:0 0 18px}h2{font-size:17px;margin:0 0 10px}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:5px 8px;border-bottom:1px solid #eef0f2;vertical-align:top}th{font-size:12px;
color:#5f6b7a;text-transform:uppercase}.badge{display:inline-block;border-radius:10px;padding:1px 8px;color:#fff;
font-size:12px;font-weight:600}.counts span{margin-right:14px}.fix{border-left:4px solid #c62828;
padding:8px 12px;background:#fff5f5}code{font:12px ui-monospace,monospace;background:#f1f3f5;padding:1px 4px;
border-radius:3px}details pre{white-space:pre-wrap;font:12px ui-monospace,monospace;margin:4px 0}
td.time{white-space:nowrap;text-align:right}.zero{opacity:.45}
.overall-pass{color:#2e7d32}.overall-fail{color:#c62828}svg text{font:11px ui-monospace,monospace}
"""


def escape(text: str) -> str:
    """Text as element content: &, < and > escaped. Quotes need no entity outside an attribute, and evidence is
    JSON full of them: with &quot; the page was a seventh larger, and each quote an & for the last redaction
    pass to look at."""
    return _escape(text, quote=False)


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{COLOURS[status]}">{escape(status)}</span>'


def waterfall(results: list[CheckResult]) -> str:
    """Inline SVG bars: when each check started and how long it took, relative to the run's start."""
    if not results:
        return ""
    end = max(r.timings.start_ms + r.timings.duration_ms for r in results) or 1.0
    label_width, bar_width, row = 230, 640, 18
    height = row * len(results) + 22
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 80}" height="{height}" '
             f'role="img" aria-label="timing waterfall">']
    for index, result in enumerate(results):
        y = index * row
        x = label_width + bar_width * result.timings.start_ms / end
        width = max(1.5, bar_width * result.timings.duration_ms / end)
        parts.append(f'<text x="0" y="{y + 13}">{escape(result.check)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" rx="2" '
                     f'fill="{COLOURS[result.status.value]}"><title>{escape(result.check)}: '
                     f'{result.timings.duration_ms:.1f} ms</title></rect>')
        parts.append(f'<text x="{x + width + 4:.1f}" y="{y + 13}" fill="#5f6b7a">'
                     f'{result.timings.duration_ms:.0f} ms</text>')
    parts.append(f'<text x="{label_width}" y="{height - 4}" fill="#5f6b7a">0 ms</text>')
    parts.append(f'<text x="{label_width + bar_width - 60}" y="{height - 4}" fill="#5f6b7a">{end:.0f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _docs(url: str) -> str:
    """A docs link as a plain anchor; anything that is not an http(s) address is shown as text, never linked."""
    if url.startswith(("https://", "http://")):
        return f'<a href="{_escape(url, quote=True)}" rel="noreferrer">docs</a>'
    return f"docs: {escape(url)}"


def _row(result: CheckResult) -> str:
    detail = ""
    if result.remediation and result.status.value in ("fail", "error", "warn"):
        detail += f"<div><b>Fix:</b> {escape(result.remediation)}</div>"
    if result.blocked_by:
        detail += f"<div>Blocked by {', '.join(f'<code>{escape(d)}</code>' for d in result.blocked_by)}</div>"
    if result.evidence:
        evidence = fields(result.evidence)
        detail += f"<details><summary>evidence</summary><pre>{escape(evidence)}</pre></details>"
    if result.docs:
        detail += f"<div>{_docs(result.docs)}</div>"
    return (f"<tr><td>{_badge(result.status.value)}</td><td><code>{escape(result.check)}</code></td>"
            f"<td>{escape(result.summary)}{detail}</td><td>{escape(result.origin)}</td>"
            f'<td class="time">{result.timings.duration_ms:.0f} ms</td></tr>')


class HtmlFormat(ReportFormat):
    """A self-contained HTML page: inline CSS and SVG, nothing fetched."""

    name = "html"
    filename = "report.html"

    def piece(self, result: CheckResult) -> str:
        return _row(result)

    def render(self, run: RunReport, pieces: Pieces | None = None) -> str:
        summary = run.summary
        counts = "".join(f'<span class="{"count" if count else "zero"}">{_badge(status)} {count}</span>'
                         for status, count in summary.counts.items())
        body = [f'<section><h2>Summary: <span class="overall-{summary.status}">{summary.status.upper()}</span></h2>'
                f'<div class="counts">{counts}</div><p>{len(run.results)} results in {run.duration_ms / 1000:.2f} s, '
                f"started {escape(run.started_at)}; config {escape(run.config_path or '(command line)')}; "
                f"tokens spent {run.tokens}.</p>"
                + "".join(f"<p>{escape(note)}</p>" for note in run.notes) + "</section>"]
        first = run.first_failure()
        if first is not None:
            body.append(f'<section class="fix"><h2>Fix first: <code>{escape(first.check)}</code> on '
                        f"{escape(first.subject)}</h2><p>{escape(first.summary)}</p>"
                        f"<p>{escape(first.remediation)}</p>"
                        + (f"<p>{_docs(first.docs)}</p>" if first.docs else "") + "</section>")
        groups = run.by_subject()
        for target in dict.fromkeys(r.target for r in run.results):
            body.append(f"<section><h2>Target {escape(target)}</h2>")
            for subject, results in groups.items():
                if results[0].target != target:
                    continue
                rows = "".join(self.piece_of(result, pieces) for result in ordered(results))
                body.append(f"<h3>{escape(subject)}</h3><table><tr><th>status</th><th>check</th><th>result</th>"
                            f"<th>origin</th><th>time</th></tr>{rows}</table>" + waterfall(results))
            body.append("</section>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>dw-preflight report: {summary.status}</title><style>{STYLE}</style></head><body>"
                # An entity, not the character: a page of ASCII only lowercases (for the last redaction pass) and
                # encodes ten times faster than one with a single character beyond it.
                f"<header><h1>dw-preflight report</h1><div>dw-preflight {escape(run.tool.get('version', '?'))} "
                f"&middot; Python {escape(run.tool.get('python', '?'))}</div></header><main>"
                + "".join(body) + "</main></body></html>\n")


__all__ = ["HtmlFormat", "waterfall"]
