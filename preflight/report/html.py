"""report.html: one self-contained page for a support ticket, with a timing waterfall per service."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape as _escape

from preflight.engine.model import CheckResult, RunReport
from preflight.report.base import ReportFormat, RootCause, count_of, fields, placements, root_causes, waiver_note

COLOURS = {"pass": "#2e7d32", "warn": "#ef8c00", "fail": "#c62828", "skip": "#757575", "error": "#6a1b9a",
           "waived": "#00838f"}
QUEUE_COLOUR = "#cfd8dc"
# The same column widths in every subject's table, so that a page of them reads as one.
COLUMNS = ('<colgroup><col style="width:5.5em"><col style="width:22%"><col><col style="width:11em">'
           '<col style="width:8.5em"></colgroup>')
STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1c1e21}
header{background:#1f2937;color:#fff;padding:16px 28px}header h1{margin:0 0 8px;font-size:20px}
header dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;font-size:13px}
header dt{color:#9ca3af}header dd{margin:0;overflow-wrap:anywhere}header code{background:#374151;color:#fff}
main{padding:18px 28px}section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;
padding:14px 18px;margin:0 0 18px;overflow-x:auto}h2{font-size:17px;margin:0 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{text-align:left;padding:5px 8px;border-bottom:1px solid #eef0f2;vertical-align:top}
th{font-size:12px;color:#5f6b7a;text-transform:uppercase}td{overflow-wrap:anywhere}
.title{color:#5f6b7a;font-size:12px}.badge{display:inline-block;border-radius:10px;padding:1px 8px;color:#fff;
font-size:12px;font-weight:600}.counts span{margin-right:14px}.fix{border-left:4px solid #c62828;background:#fff5f5}
.cause{margin:0 0 12px}.cause h3{margin:0 0 4px}.cause p{margin:2px 0}.affects{color:#5f6b7a}
code{font:12px ui-monospace,monospace;background:#f1f3f5;padding:1px 4px;border-radius:3px;overflow-wrap:anywhere}
details pre{white-space:pre-wrap;overflow-wrap:anywhere;font:12px ui-monospace,monospace;margin:4px 0}
td.time{white-space:nowrap;text-align:right}.queue{color:#5f6b7a;font-size:12px}.zero{opacity:.45}
.overall-pass{color:#2e7d32}.overall-fail{color:#c62828}svg{max-width:100%;height:auto}
svg text{font:11px ui-monospace,monospace}
@media print{
body{background:#fff;font-size:11px}header{background:none;color:#000;border-bottom:2px solid #000;padding:0 0 8px}
header dt{color:#444}header code{background:none;color:#000}main{padding:8px 0}
section{border:none;padding:0;overflow:visible}tr{break-inside:avoid}h2,h3{break-after:avoid}
.badge{-webkit-print-color-adjust:exact;print-color-adjust:exact}
details>summary{display:none}details::details-content{content-visibility:visible;display:block}
details:not([open])>pre{display:block}
}
"""


def escape(text: str) -> str:
    """Text as element content: &, < and > escaped. Quotes need no entity outside an attribute, and evidence is
    JSON full of them: written as they are, it stays readable in the page's source."""
    return _escape(text, quote=False)


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{COLOURS[status]}">{escape(status)}</span>'


def waterfall(results: list[CheckResult]) -> str:
    """Inline SVG bars relative to the run's start: each check's queue time (light) and its own work."""
    if not results:
        return ""
    end = max(r.timings.start_ms + r.timings.duration_ms for r in results) or 1.0
    label_width, bar_width, row = 230, 640, 18
    height = row * len(results) + 22
    width = label_width + bar_width + 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="timing waterfall">']
    for index, result in enumerate(results):
        y = index * row
        timings = result.timings
        x = label_width + bar_width * timings.start_ms / end
        own = max(1.5, bar_width * timings.duration_ms / end)
        parts.append(f'<text x="0" y="{y + 13}">{escape(result.check)}</text>')
        if timings.queued_ms > 0:
            queued = bar_width * timings.queued_ms / end
            parts.append(f'<rect x="{x - queued:.1f}" y="{y + 6}" width="{queued:.1f}" height="{row - 12}" '
                         f'fill="{QUEUE_COLOUR}"><title>{escape(result.check)}: queued '
                         f'{timings.queued_ms:.1f} ms</title></rect>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{own:.1f}" height="{row - 6}" rx="2" '
                     f'fill="{COLOURS[result.status.value]}"><title>{escape(result.check)}: '
                     f'{timings.duration_ms:.1f} ms</title></rect>')
        parts.append(f'<text x="{x + own + 4:.1f}" y="{y + 13}" fill="#5f6b7a">{timings.duration_ms:.0f} ms</text>')
    parts.append(f'<text x="{label_width}" y="{height - 4}" fill="#5f6b7a">0 ms</text>')
    parts.append(f'<text x="{label_width + bar_width - 60}" y="{height - 4}" fill="#5f6b7a">{end:.0f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _linked(text: str, url: str) -> str:
    """`text` linked to a docs address; anything that is not an http(s) address is never linked."""
    if url.startswith(("https://", "http://")):
        return f'<a href="{_escape(url, quote=True)}" rel="noreferrer">{text}</a>'
    return text


def _check(result: CheckResult) -> str:
    """The check's id and title, linked once to its docs."""
    title = f'<div class="title">{escape(result.title)}</div>' if result.title else ""
    return _linked(f"<code>{escape(result.check)}</code>", result.docs) + title


def _row(result: CheckResult) -> str:
    detail = ""
    if result.remediation and result.status.value in ("fail", "error", "warn", "waived"):
        detail += f"<div><b>Fix:</b> {escape(result.remediation)}</div>"
    if result.waiver:
        detail += f"<div><b>Waiver:</b> {escape(waiver_note(result))}</div>"
    if result.evidence:
        detail += f"<details><summary>evidence</summary><pre>{escape(fields(result.evidence))}</pre></details>"
    queued = result.timings.queued_ms
    queue = f'<div class="queue">+{queued:.0f} ms queued</div>' if queued >= 0.5 else ""
    return (f"<tr><td>{_badge(result.status.value)}</td><td class=\"check\">{_check(result)}</td>"
            f"<td>{escape(result.summary)}{detail}</td><td>{escape(result.origin)}</td>"
            f'<td class="time">{result.timings.duration_ms:.0f} ms{queue}</td></tr>')


def _cause(cause: RootCause) -> str:
    first = cause.first
    where = (escape(first.subject) if len(cause.results) == 1 else
             f"{count_of(cause.results)}: " + ", ".join(escape(subject) for subject in cause.subjects))
    fix = f"<p><b>Fix:</b> {escape(first.remediation)}</p>" if first.remediation else ""
    return (f'<div class="cause"><h3>{_badge(cause.status.value)} {_check(first)}</h3>'
            f'<p class="affects">{where} ({escape(first.origin)})</p><p>{escape(first.summary)}</p>{fix}</div>')


def _distinct(values: Iterable[str | None]) -> str:
    found = [value for value in dict.fromkeys(values) if value]
    return ", ".join(escape(value) for value in found) if found else "&mdash;"


def _header(run: RunReport) -> str:
    targets = run.targets
    command = " ".join(run.argv)
    items = [
        ("Command", f"<code>{escape(command)}</code>" if command else "&mdash;"),
        ("Host", escape(run.tool.get("host", "") or "?")),
        ("Started", escape(run.started_at)),
        ("Duration", f"{run.duration_ms / 1000:.2f} s"),
        ("Regions", _distinct(target.get("region") for target in targets)),
        ("Workspaces", _distinct(target.get("workspace") for target in targets)),
        ("Resource groups", _distinct(target.get("resource_group") for target in targets)),
        ("Config", escape(run.config_path or "(command line)")),
        ("Tool", f"dw-preflight {escape(run.tool.get('version', '?'))} &middot; Python "
                 f"{escape(run.tool.get('python', '?'))} &middot; {escape(run.tool.get('platform', '?'))}"),
    ]
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    return f"<header><h1>dw-preflight report</h1><dl>{rows}</dl></header>"


class HtmlFormat(ReportFormat):
    """A self-contained HTML page: inline CSS and SVG, nothing fetched, nothing run."""

    name = "html"
    filename = "report.html"

    def render(self, run: RunReport) -> str:
        summary = run.summary
        counts = "".join(f'<span class="{"count" if count else "zero"}">{_badge(status)} {count}</span>'
                         for status, count in summary.counts.items())
        body = [f'<section><h2>Summary: <span class="overall-{summary.status}">{summary.status.upper()}</span></h2>'
                f'<div class="counts">{counts}</div><p>{len(run.results)} results; tokens spent {run.tokens}. '
                "Each time is the check's own work; time spent waiting for its turn is shown as queued.</p>"
                + "".join(f"<p>{escape(note)}</p>" for note in run.notes) + "</section>"]
        causes = root_causes(run)
        if causes:
            count = "" if len(causes) == 1 else f": {len(causes)} root causes"
            body.append(f'<section class="fix"><h2>Fix first{count}</h2>' + "".join(_cause(c) for c in causes)
                        + "</section>")
        places = placements(run)
        if places:
            rows = "".join(f"<tr><td>{escape(place.label)}</td><td>{escape(place.tally)}</td>"
                           f"<td>{escape(', '.join(place.targets))}</td></tr>" for place in places)
            body.append("<section><h2>By region, workspace and resource group</h2><table><tr><th>region / "
                        f"workspace / resource group</th><th>results</th><th>targets</th></tr>{rows}</table>"
                        "</section>")
        groups = run.by_subject()
        for target in dict.fromkeys(r.target for r in run.results):
            body.append(f"<section><h2>Target {escape(target)}</h2>")
            for subject, results in groups.items():
                if results[0].target != target:
                    continue
                rows = "".join(_row(result) for result in results)
                body.append(f"<h3>{escape(subject)}</h3><table>{COLUMNS}<tr><th>status</th><th>check</th>"
                            f"<th>result</th><th>origin</th><th>time</th></tr>{rows}</table>" + waterfall(results))
            body.append("</section>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>dw-preflight report: {summary.status}</title><style>{STYLE}</style></head><body>"
                + _header(run) + "<main>" + "".join(body) + "</main></body></html>\n")


__all__ = ["HtmlFormat", "waterfall"]
