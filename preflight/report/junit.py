"""junit.xml: one testcase per check per target/service, for CI systems that read JUnit, built with ElementTree."""

from __future__ import annotations

import functools
import json
import re
import xml.etree.ElementTree as ET

from preflight.engine.model import CheckResult, RunReport, Status
from preflight.report.base import ReportFormat, plain, waiver_note

_LINE_CONTROLS = {ord("\t"): None, ord("\n"): None, ord("\r"): None}  # the control characters XML carries


@functools.cache
def _not_xml() -> re.Pattern[str]:
    """Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a file no parser reads."""
    return re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with XML-illegal characters (NUL, other control characters, lone surrogates) shown as U+FFFD."""
    # Nearly every text is printable ASCII but for tabs and line breaks: nothing to replace.
    if text.isascii() and (text.isprintable() or text.translate(_LINE_CONTROLS).isprintable()):
        return text
    return _not_xml().sub("\ufffd", text)


def _detail(result: CheckResult) -> str:
    lines = [f"Fix: {result.remediation}"] if result.remediation else []
    if result.evidence:
        lines.append("Evidence: " + json.dumps(plain(result.evidence), ensure_ascii=False))
    if result.docs:
        lines.append(f"Docs: {result.docs}")
    lines.append(f"Origin: {result.origin}")
    return xml_text("\n".join(lines))


def _seconds(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.3f}"


def _testcase(parent: ET.Element, result: CheckResult) -> None:
    case = ET.SubElement(parent, "testcase", classname=xml_text(result.subject.replace("/", ".")),
                         name=xml_text(result.check), time=_seconds(result.timings.duration_ms))
    summary = xml_text(result.summary)
    if result.status is Status.FAIL:
        ET.SubElement(case, "failure", message=summary, type="fail").text = _detail(result)
    elif result.status is Status.ERROR:
        ET.SubElement(case, "error", message=summary, type="error").text = _detail(result)
    elif result.status is Status.WAIVED:
        # A waived fail or warn is skipped in CI's eyes, with the waiver's reason, date and ticket as the message.
        note = xml_text(waiver_note(result) or "waived")
        ET.SubElement(case, "skipped", message=note).text = xml_text(f"{note}\n{result.summary}\n{_detail(result)}")
    elif result.status is Status.SKIP:
        # The reason a check was skipped is its summary ("blocked: auth.key_valid is fail").
        ET.SubElement(case, "skipped", message=summary).text = summary
    else:
        text = f"{result.status.value}: {result.summary}"
        if result.status is Status.WARN:
            text += "\n" + _detail(result)
        ET.SubElement(case, "system-out").text = xml_text(text)


class JunitFormat(ReportFormat):
    """JUnit XML: a testsuite per subject; failures and errors carry the remediation and evidence."""

    name = "junit"
    filename = "junit.xml"

    def render(self, run: RunReport) -> str:
        root = ET.Element("testsuites", name="dw-preflight", time=_seconds(run.duration_ms))
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for subject, results in run.by_subject().items():
            counts = {
                "tests": len(results),
                "failures": sum(r.status is Status.FAIL for r in results),
                "errors": sum(r.status is Status.ERROR for r in results),
                "skipped": sum(r.status in (Status.SKIP, Status.WAIVED) for r in results),
            }
            for key, value in counts.items():
                totals[key] += value
            suite = ET.SubElement(root, "testsuite", {
                "name": xml_text(subject), "timestamp": run.started_at,
                "time": _seconds(sum(r.timings.duration_ms for r in results)),
                **{key: str(value) for key, value in counts.items()}})
            for result in results:
                _testcase(suite, result)
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root, space="  ")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


__all__ = ["JunitFormat", "xml_text"]
