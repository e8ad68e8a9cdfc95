"""report.json: the machine-readable run report, schema preflight-report/1."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from preflight.engine.model import CheckResult, RunReport
from preflight.report.base import ReportFormat, encode_json, plain

SCHEMA = "preflight-report/1"


def result_dict(result: CheckResult, *, checked: bool = True) -> dict[str, Any]:
    """One result as JSON-ready data; `checked=False` leaves the evidence as it is, for a caller that encodes
    it strictly and falls back to `plain` itself (see `layout`), instead of encoding it twice."""
    data = {
        "target": result.target, "service": result.service, "check": result.check, "title": result.title,
        "status": result.status.value, "summary": result.summary,
        "evidence": plain(result.evidence) if checked else result.evidence,
        "remediation": result.remediation, "docs": result.docs, "blocked_by": list(result.blocked_by),
        "origin": result.origin,
        "timings": {"start_ms": _ms(result.timings.start_ms), "duration_ms": _ms(result.timings.duration_ms),
                    "queued_ms": _ms(result.timings.queued_ms)},
        "tokens": result.tokens,
    }
    if result.waiver is not None:
        data["waiver"] = dict(result.waiver)
    return data


def _ms(value: float) -> float:
    return value if math.isfinite(value) and value >= 0 else 0.0


def report_dict(run: RunReport, *, checked: bool = True, results: bool = True) -> dict[str, Any]:
    """The report as JSON-ready data; `results=False` leaves the results out (`layout` is given them encoded)."""
    summary = run.summary
    report = {
        "schema": SCHEMA, "tool": dict(run.tool), "started_at": run.started_at, "duration_ms": _ms(run.duration_ms),
        "config": run.config_path, "argv": list(run.argv),
        "targets": [dict(target) for target in run.targets], "tokens_spent": run.tokens, "notes": list(run.notes),
        "summary": {"status": summary.status, **summary.counts},
    }
    if run.wait is not None:
        report["wait"] = plain(dict(run.wait))
    if results:
        report["results"] = [result_dict(result, checked=checked) for result in run.results]
    return report


class JsonFormat(ReportFormat):
    """The documented JSON report."""

    name = "json"
    filename = "report.json"

    def render(self, run: RunReport) -> str:
        report = report_dict(run, checked=False, results=False)
        return layout(report, [_result_line(result_dict(result, checked=False)) for result in run.results])


def layout(report: Mapping[str, Any], result_lines: list[str] | None = None) -> str:
    """The report as JSON with one field per line at the top, and one result per line.

    `grep endpoint.dns report.json` shows whole results, and `jq` indents them for a person. `result_lines`,
    when given, are the results already encoded (one `_result_line` each), written last as "results".
    """
    lines = []
    for key, value in report.items():
        if key == "results" and isinstance(value, list):
            lines.append(_results(key, [_result_line(item) for item in value]))
        else:
            lines.append(f"  {encode_json(key)}: {encode_json(value)}")
    if result_lines is not None:
        lines.append(_results("results", result_lines))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _results(key: str, encoded: list[str]) -> str:
    if not encoded:
        return f"  {encode_json(key)}: []"
    items = ",\n".join(f"    {line}" for line in encoded)
    return f"  {encode_json(key)}: [\n{items}\n  ]"


def _result_line(result: Mapping[str, Any]) -> str:
    """One result, strictly encoded; evidence the strict encoder refuses goes through `plain` first.

    The same JSON as encoding `plain(evidence)`: `plain` returns evidence unchanged exactly when it encodes
    strictly, so only the refused results pay for a second encoding.
    """
    try:
        return encode_json(result)
    except (TypeError, ValueError):
        return encode_json({**result, "evidence": plain(result.get("evidence"))})


__all__ = ["SCHEMA", "JsonFormat", "layout", "report_dict", "result_dict"]
