"""junit.xml: one testcase per check per target/service, for CI systems that read JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from preflight.model import RunReport, Status
from preflight.report.base import ReportFormat


class JunitFormat(ReportFormat):
    """JUnit XML: a testsuite per subject; failures and errors carry the remediation and evidence."""

    name = "junit"
    filename = "junit.xml"

    def render(self, run: RunReport) -> str:
        root = ET.Element("testsuites", name="dw-preflight", time=f"{run.duration_ms / 1000:.3f}")
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for subject in run.subjects():
            results = [r for r in run.results if r.subject == subject]
            counts = {
                "tests": len(results),
                "failures": sum(r.status is Status.FAIL for r in results),
                "errors": sum(r.status is Status.ERROR for r in results),
                "skipped": sum(r.status is Status.SKIP for r in results),
            }
            for key, value in counts.items():
                totals[key] += value
            attributes = {"name": subject, "timestamp": run.started_at,
                          "time": f"{sum(r.timings.duration_ms for r in results) / 1000:.3f}",
                          **{key: str(value) for key, value in counts.items()}}
            suite = ET.SubElement(root, "testsuite", attributes)
            for result in results:
                case = ET.SubElement(suite, "testcase", classname=subject.replace("/", "."), name=result.check,
                                     time=f"{result.timings.duration_ms / 1000:.3f}")
                lines = [f"Fix: {result.remediation}"] if result.remediation else []
                if result.evidence:
                    lines.append("Evidence: " + json.dumps(dict(result.evidence), default=str, ensure_ascii=False))
                lines.append(f"Origin: {result.origin}")
                detail = "\n".join(lines)
                if result.status is Status.FAIL:
                    ET.SubElement(case, "failure", message=result.summary, type="fail").text = detail
                elif result.status is Status.ERROR:
                    ET.SubElement(case, "error", message=result.summary, type="error").text = detail
                elif result.status is Status.SKIP:
                    ET.SubElement(case, "skipped", message=result.summary)
                else:
                    ET.SubElement(case, "system-out").text = f"{result.status.value}: {result.summary}"
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


__all__ = ["JunitFormat"]
