"""junit.xml: one testcase per check per target/service, for CI systems that read JUnit."""

from __future__ import annotations

import functools
import json
import re
from html import escape

from preflight.model import CheckResult, RunReport, Status
from preflight.report.base import Pieces, ReportFormat
from preflight.report.json import plain

_LINE_CONTROLS = {ord("\t"): None, ord("\n"): None, ord("\r"): None}  # the control characters XML carries


@functools.cache
def _not_xml() -> re.Pattern[str]:
    """Characters XML 1.0 cannot carry at all; ElementTree would write them and produce a file no parser reads.

    Compiled when first needed (6 ms: a class of most of Unicode), which most runs never are.
    """
    return re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with XML-illegal characters (NUL, other control characters, lone surrogates) shown as U+FFFD."""
    # Nearly every text is printable ASCII but for tabs and line breaks: nothing to replace, and no regex.
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


def _attribute(value: str) -> str:
    """An attribute value escaped as ElementTree escapes it."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#09;"))


def _attributes(attributes: dict[str, str]) -> str:
    """` key="value"` for each attribute, in order, as ElementTree writes them."""
    return "".join(f' {key}="{_attribute(value)}"' for key, value in attributes.items())


def _element(name: str, attributes: dict[str, str], text: str) -> str:
    return f"<{name}{_attributes(attributes)}>{escape(text, quote=False)}</{name}>"


class JunitFormat(ReportFormat):
    """JUnit XML: a testsuite per subject; failures and errors carry the remediation and evidence.

    Written as text, as ElementTree with `indent` writes it (two spaces a level), one testcase a piece.
    """

    name = "junit"
    filename = "junit.xml"

    def piece(self, result: CheckResult) -> str:
        """The result's testcase, indented inside its testsuite."""
        summary = xml_text(result.summary)
        if result.status is Status.FAIL:
            inner = _element("failure", {"message": summary, "type": "fail"}, _detail(result))
        elif result.status is Status.ERROR:
            inner = _element("error", {"message": summary, "type": "error"}, _detail(result))
        elif result.status is Status.SKIP:
            # The reason a check was skipped is its summary ("blocked: auth.key_valid is fail").
            inner = _element("skipped", {"message": summary}, summary)
        else:
            text = f"{result.status.value}: {result.summary}"
            if result.status is Status.WARN:
                text += "\n" + _detail(result)
            inner = _element("system-out", {}, xml_text(text))
        case = {"classname": xml_text(result.subject.replace("/", ".")), "name": xml_text(result.check),
                "time": f"{result.timings.duration_ms / 1000:.3f}"}
        return f"    <testcase{_attributes(case)}>\n      {inner}\n    </testcase>"

    def render(self, run: RunReport, pieces: Pieces | None = None) -> str:
        totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        suites = []
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
            cases = "\n".join(self.piece_of(result, pieces) for result in results)
            suites.append(f"  <testsuite{_attributes(attributes)}>\n{cases}\n  </testsuite>")
        root = {"name": "dw-preflight", "time": f"{run.duration_ms / 1000:.3f}",
                **{key: str(value) for key, value in totals.items()}}
        opening = _attributes(root)
        body = f"<testsuites{opening}>\n" + "\n".join(suites) + "\n</testsuites>" if suites else \
            f"<testsuites{opening} />"
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


__all__ = ["JunitFormat"]
