"""junit.xml: one testcase per check per target/service, for CI systems that read JUnit."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from preflight.model import CheckResult, RunReport, Status
from preflight.report.base import Pieces, ReportFormat
from preflight.report.json import plain

# Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a file no parser reads.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with XML-illegal characters (NUL, other control characters, lone surrogates) shown as U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _detail(result: CheckResult) -> str:
    lines = [f"Fix: {result.remediation}"] if result.remediation else []
    if result.evidence:
        lines.append("Evidence: " + json.dumps(plain(result.evidence), ensure_ascii=False))
    if result.docs:
        lines.append(f"Docs: {result.docs}")
    lines.append(f"Origin: {result.origin}")
    return xml_text("\n".join(lines))


class JunitFormat(ReportFormat):
    """JUnit XML: a testsuite per subject; failures and errors carry the remediation and evidence."""

    name = "junit"
    filename = "junit.xml"

    def render(self, run: RunReport, pieces: Pieces | None = None) -> str:
        root = ET.Element("testsuites", name="dw-preflight", time=f"{run.duration_ms / 1000:.3f}")
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for subject, results in run.by_subject().items():
            counts = {
                "tests": len(results),
                "failures": sum(r.status is Status.FAIL for r in results),
                "errors": sum(r.status is Status.ERROR for r in results),
                "skipped": sum(r.status is Status.SKIP for r in results),
            }
            for key, value in counts.items():
                totals[key] += value
            attributes = {"name": xml_text(subject), "timestamp": run.started_at,
                          "time": f"{sum(r.timings.duration_ms for r in results) / 1000:.3f}",
                          **{key: str(value) for key, value in counts.items()}}
            suite = ET.SubElement(root, "testsuite", attributes)
            for result in results:
                case = ET.SubElement(suite, "testcase", classname=xml_text(subject.replace("/", ".")),
                                     name=xml_text(result.check), time=f"{result.timings.duration_ms / 1000:.3f}")
                summary = xml_text(result.summary)
                if result.status is Status.FAIL:
                    ET.SubElement(case, "failure", message=summary, type="fail").text = _detail(result)
                elif result.status is Status.ERROR:
                    ET.SubElement(case, "error", message=summary, type="error").text = _detail(result)
                elif result.status is Status.SKIP:
                    # The reason a check was skipped is its summary ("blocked: auth.key_valid is fail").
                    ET.SubElement(case, "skipped", message=summary).text = summary
                else:
                    text = f"{result.status.value}: {result.summary}"
                    if result.status is Status.WARN:
                        text += "\n" + _detail(result)
                    ET.SubElement(case, "system-out").text = xml_text(text)
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


__all__ = ["JunitFormat"]
