"""report.json: the machine-readable run report, schema preflight-report/1."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from preflight.model import CheckResult, RunReport
from preflight.report.base import ReportFormat

SCHEMA = "preflight-report/1"


def plain(value: Any) -> Any:
    """Evidence as strict JSON: NaN and infinities become strings, bytes text, unknown objects their str()."""
    # json.dumps would write NaN/Infinity, which strict parsers (and the schema) reject.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def result_dict(result: CheckResult) -> dict[str, Any]:
    return {
        "target": result.target, "service": result.service, "check": result.check, "title": result.title,
        "status": result.status.value, "summary": result.summary, "evidence": plain(result.evidence),
        "remediation": result.remediation, "docs": result.docs, "blocked_by": list(result.blocked_by),
        "origin": result.origin,
        "timings": {"start_ms": _ms(result.timings.start_ms), "duration_ms": _ms(result.timings.duration_ms)},
        "tokens": result.tokens,
    }


def _ms(value: float) -> float:
    return value if math.isfinite(value) and value >= 0 else 0.0


def report_dict(run: RunReport) -> dict[str, Any]:
    summary = run.summary
    return {
        "schema": SCHEMA, "tool": dict(run.tool), "started_at": run.started_at, "duration_ms": _ms(run.duration_ms),
        "config": run.config_path, "tokens_spent": run.tokens, "notes": list(run.notes),
        "summary": {"status": summary.status, **summary.counts},
        "results": [result_dict(result) for result in run.results],
    }


class JsonFormat(ReportFormat):
    """The documented JSON report."""

    name = "json"
    filename = "report.json"

    def render(self, run: RunReport) -> str:
        return json.dumps(report_dict(run), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


__all__ = ["SCHEMA", "JsonFormat", "plain", "report_dict", "result_dict"]
