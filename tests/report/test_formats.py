"""Report formats: the JSON schema, JUnit that a standard parser reads, self-contained HTML, exact text output."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema
from junitparser import JUnitXml

from preflight.model import CheckResult, RunReport, Status, Timings
from preflight.redact import REDACTOR
from preflight.report import write_reports
from preflight.report.console import render_final
from preflight.report.html import HtmlFormat
from preflight.report.json import JsonFormat
from preflight.report.markdown import MarkdownFormat

CANARY = "DW-ms-report-canary-4242424242"
TOOL = {"name": "dw-preflight", "version": "0.1.0", "python": "3.11.7", "platform": "Linux"}


def result(check: str, status: Status, summary: str, *, service: str | None = "qwen", start: float = 0.0,
           duration: float = 5.0, **extra: object) -> CheckResult:
    return CheckResult(check=check, title=check.title(), target="prod", service=service, status=status,
                       summary=summary, timings=Timings(start, duration), **extra)  # type: ignore[arg-type]


def sample() -> RunReport:
    return RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=812.5, config_path="p.yaml",
                     notes=("demo scenario 'x'",), results=(
                         result("cloud.credentials", Status.PASS, "accepted", service=None, duration=3.0),
                         result("endpoint.dns", Status.PASS, "resolves", start=3.0, duration=2.0,
                                evidence={"answers": ["10.0.0.5"]}),
                         result("auth.key_valid", Status.FAIL, "HTTP 401: the service refused the key",
                                start=5.0, duration=40.0, remediation="Check the key.",
                                evidence={"status": 401, "echo": f"Invalid key {CANARY}"}),
                         result("inference.completion", Status.SKIP, "blocked: auth.key_valid is fail",
                                start=45.0, duration=0.0, blocked_by=("auth.key_valid",)),
                     ))


def test_json_report_validates_against_the_shipped_schema() -> None:
    schema = json.loads(resources.files("preflight.report").joinpath("schema.json").read_text())
    document = json.loads(JsonFormat().render(sample()))
    jsonschema.validate(document, schema)
    assert document["summary"] == {"status": "fail", "pass": 2, "warn": 0, "fail": 1, "skip": 1, "error": 0}
    broken = {**document, "summary": {**document["summary"], "status": "maybe"}}
    try:
        jsonschema.validate(broken, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("the schema accepted an unknown overall status")


def test_junit_parses_with_a_standard_parser(tmp_path: Path) -> None:
    write_reports(sample(), tmp_path)
    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"prod", "prod/qwen"}
    qwen = suites["prod/qwen"]
    assert (qwen.tests, qwen.failures, qwen.skipped) == (3, 1, 1)
    failed = next(case for case in qwen if case.name == "auth.key_valid")
    assert failed.result[0].message == "HTTP 401: the service refused the key"
    assert "Check the key." in (failed.result[0].text or "")


class _Fetches(HTMLParser):
    """Collects anything in a page that would make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img", "iframe", "link", "source", "video", "audio", "embed", "object"):
            self.fetches.append(f"<{tag} {values}>")
        if "style" in values and "url(" in (values["style"] or ""):
            self.fetches.append(f"style url in <{tag}>")

    def handle_data(self, data: str) -> None:
        if "@import" in data or "url(" in data:
            self.fetches.append("css fetch")


def test_html_is_self_contained_and_has_a_waterfall() -> None:
    page = HtmlFormat().render(sample())
    parser = _Fetches()
    parser.feed(page)
    assert parser.fetches == []
    assert page.count("<svg") == 2 and 'aria-label="timing waterfall"' in page
    assert page.index("auth.key_valid") < page.index("endpoint.dns")  # the fix first, above the tables
    assert "Fix first" in page


def test_markdown_puts_the_fix_first() -> None:
    text = MarkdownFormat().render(sample())
    assert text.splitlines()[2] == ("**FAIL** — 2 pass, 0 warn, 1 fail, 1 skip, 0 error; 4 results in 0.81 s "
                                    "(started 2026-11-24T10:00:00+00:00, dw-preflight 0.1.0).")
    assert ("## Fix first\n\n**auth.key_valid** (fail) on `prod/qwen` (local): HTTP 401: the service refused "
            "the key\n\nCheck the key.\n") in text
    assert "| ⏭️ skip | `inference.completion` | blocked: auth.key_valid is fail | blocked by `auth.key_valid` |" \
           in text


def test_console_final_output_is_exact() -> None:
    out = io.StringIO()
    render_final(sample(), out, color=False)
    assert out.getvalue() == (
        "prod\n"
        "  PASS  cloud.credentials              accepted\n"
        "prod/qwen\n"
        "  PASS  endpoint.dns                   resolves\n"
        "  FAIL  auth.key_valid                 HTTP 401: the service refused the key\n"
        "  SKIP  inference.completion           blocked: auth.key_valid is fail\n"
        "\n"
        "FAIL: 2 pass, 1 fail, 1 skip in 0.81 s\n"
        "note: demo scenario 'x'\n"
        "\n"
        "First problem: auth.key_valid on prod/qwen (local)\n"
        "  HTTP 401: the service refused the key\n"
        "  Fix: Check the key.\n")


def test_a_secret_in_a_result_reaches_no_report(tmp_path: Path) -> None:
    REDACTOR.add(CANARY, "api_key")
    paths = write_reports(sample(), tmp_path)
    assert sorted(path.name for path in paths) == ["junit.xml", "report.html", "report.json", "report.md"]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert CANARY not in text, path.name
        # Formats that show evidence show where the secret was.
        assert ("[REDACTED]" in text) == (path.name in ("report.json", "report.html", "junit.xml")), path.name


def test_a_file_that_cannot_be_written_is_a_report_error(tmp_path: Path) -> None:
    import pytest

    from preflight.report import ReportError

    (tmp_path / "report.html.tmp").mkdir()  # the temporary file cannot be created
    with pytest.raises(ReportError, match=r"cannot write .*report\.html"):
        write_reports(sample(), tmp_path)
    assert (tmp_path / "report.json").exists()  # the formats before it were written


def test_junit_attributes_and_text_carry_markup_quotes_and_line_breaks() -> None:
    import xml.etree.ElementTree as ET

    from preflight.report.junit import JunitFormat

    tricky = 'refused: "<b>" & \'x\'\n\tsecond line\r'
    run = RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=1.0, config_path=None, notes=(),
                    results=(result("auth.key_valid", Status.FAIL, tricky, service='a"<&>b', remediation=tricky),))
    root = ET.fromstring(JunitFormat().render(run).encode("utf-8"))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == 'prod/a"<&>b' and root.get("failures") == "1"
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == tricky
    assert failure.text is not None and failure.text.startswith("Fix: " + tricky.replace("\r", "\n"))
