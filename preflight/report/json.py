"""report.json: the machine-readable run report, schema preflight-report/1."""

from __future__ import annotations

import json
from typing import Any

from preflight.model import CheckResult, RunReport
from preflight.report.base import ReportFormat

SCHEMA = "preflight-report/1"


def result_dict(result: CheckResult) -> dict[str, Any]:
    return {
        "target": result.target, "service": result.service, "check": result.check, "title": result.title,
        "status": result.status.value, "summary": result.summary, "evidence": dict(result.evidence),
        "remediation": result.remediation, "docs": result.docs, "blocked_by": list(result.blocked_by),
        "origin": result.origin,
        "timings": {"start_ms": result.timings.start_ms, "duration_ms": result.timings.duration_ms},
        "tokens": result.tokens,
    }


def report_dict(run: RunReport) -> dict[str, Any]:
    summary = run.summary
    return {
        "schema": SCHEMA, "tool": dict(run.tool), "started_at": run.started_at, "duration_ms": run.duration_ms,
        "config": run.config_path, "tokens_spent": run.tokens, "notes": list(run.notes),
        "summary": {"status": summary.status, **summary.counts},
        "results": [result_dict(result) for result in run.results],
    }


class JsonFormat(ReportFormat):
    """The documented JSON report."""

    name = "json"
    filename = "report.json"

    def render(self, run: RunReport) -> str:
        return json.dumps(report_dict(run), indent=2, ensure_ascii=False, default=str) + "\n"


__all__ = ["SCHEMA", "JsonFormat", "report_dict", "result_dict"]
