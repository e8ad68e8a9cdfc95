"""Report formats: the JSON schema, JUnit that a standard parser reads, self-contained HTML, exact text output."""

from __future__ import annotations

import dataclasses
import io
import json
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema
from junitparser import JUnitXml

from preflight.engine.model import CheckResult, RunReport, Status, Timings
from preflight.engine.redact import REDACTOR
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
    assert document["summary"] == {"status": "fail", "pass": 2, "warn": 0, "fail": 1, "skip": 1, "error": 0,
                                   "waived": 0}
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


def header_sample() -> RunReport:
    base = sample()
    results = tuple(dataclasses.replace(r, timings=Timings(r.timings.start_ms, r.timings.duration_ms,
                                                           max(0.0, r.timings.start_ms - 12)))
                    for r in base.results)
    return RunReport(tool={**TOOL, "host": "build-7"}, started_at=base.started_at, duration_ms=base.duration_ms,
                     results=results, config_path="p.yaml", notes=base.notes,
                     argv=("preflight", "run", "-c", "p.yaml", "--report-dir", "/tmp/[REDACTED]"),
                     targets=({"name": "prod", "region": "cn-beijing", "workspace": "123456",
                               "resource_group": "Serverless_res_group_1"},
                              {"name": "dev", "region": "cn-shanghai", "workspace": None, "resource_group": None}))


def test_junit_is_exact() -> None:
    from preflight.report.junit import JunitFormat

    run = RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=50.0, results=(
        result("endpoint.dns", Status.PASS, "resolves", duration=2.0),
        result("auth.key_valid", Status.FAIL, "HTTP 401 <refused>", duration=40.0, remediation="Check the key.",
               evidence={"status": 401}, docs="https://example.com/key"),
        result("inference.chat", Status.SKIP, "blocked: auth.key_valid is fail", duration=0.0,
               blocked_by=("auth.key_valid",)),
    ))
    assert JunitFormat().render(run) == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<testsuites name="dw-preflight" time="0.050" tests="3" failures="1" errors="0" skipped="1">\n'
        '  <testsuite name="prod/qwen" timestamp="2026-11-24T10:00:00+00:00" time="0.042" tests="3" failures="1" '
        'errors="0" skipped="1">\n'
        '    <testcase classname="prod.qwen" name="endpoint.dns" time="0.002">\n'
        "      <system-out>pass: resolves</system-out>\n"
        "    </testcase>\n"
        '    <testcase classname="prod.qwen" name="auth.key_valid" time="0.040">\n'
        '      <failure message="HTTP 401 &lt;refused&gt;" type="fail">Fix: Check the key.\n'
        'Evidence: {"status": 401}\n'
        "Docs: https://example.com/key\n"
        "Origin: local</failure>\n"
        "    </testcase>\n"
        '    <testcase classname="prod.qwen" name="inference.chat" time="0.000">\n'
        '      <skipped message="blocked: auth.key_valid is fail">blocked: auth.key_valid is fail</skipped>\n'
        "    </testcase>\n"
        "  </testsuite>\n"
        "</testsuites>\n")


def test_html_header_names_the_command_host_scope_and_time() -> None:
    page = HtmlFormat().render(header_sample())
    assert ("<dl><dt>Command</dt><dd><code>preflight run -c p.yaml --report-dir /tmp/[REDACTED]</code></dd>"
            "<dt>Host</dt><dd>build-7</dd><dt>Started</dt><dd>2026-11-24T10:00:00+00:00</dd>"
            "<dt>Duration</dt><dd>0.81 s</dd><dt>Regions</dt><dd>cn-beijing, cn-shanghai</dd>"
            "<dt>Workspaces</dt><dd>123456</dd><dt>Resource groups</dt><dd>Serverless_res_group_1</dd>"
            "<dt>Config</dt><dd>p.yaml</dd>") in page
    assert "max-width:1200px" not in page and "@media print{" in page
    assert "details::details-content{content-visibility:visible" in page  # print expands the evidence


def test_html_rows_link_docs_once_say_blocked_once_and_show_queue_time_apart() -> None:
    page = HtmlFormat().render(header_sample())
    failed = ('<tr><td><span class="badge" style="background:#c62828">fail</span></td><td class="check">'
              '<code>auth.key_valid</code><div class="title">Auth.Key_Valid</div></td>'
              "<td>HTTP 401: the service refused the key<div><b>Fix:</b> Check the key.</div>")
    assert failed in page
    skipped = page[page.index("<code>inference.completion</code>"):]
    skipped = skipped[:skipped.index("</tr>")]
    assert skipped.count("blocked") == 1 and "Blocked by" not in page
    assert '<td class="time">40 ms<div class="queue">+5 ms queued</div></td>' in page
    docs = sample().results[2]
    linked = HtmlFormat().render(RunReport(tool=TOOL, started_at="now", duration_ms=1.0, results=(
        CheckResult(docs.check, docs.title, docs.target, docs.service, docs.status, docs.summary,
                    docs="https://example.com/key"),)))
    assert linked.count('href="https://example.com/key"') == 2  # in its row's title and in "Fix first", once each
    assert ">docs<" not in linked


def test_html_fix_first_groups_a_root_cause_with_every_subject() -> None:
    shared = tuple(result("network.model_allowlist", Status.FAIL, "first VPC vpc-1 is not allowed", service=name,
                          remediation="Allow vpc-1.") for name in ("a", "b", "c"))
    page = HtmlFormat().render(RunReport(tool=TOOL, started_at="now", duration_ms=1.0, results=shared))
    assert '<p class="affects">3 services: prod/a, prod/b, prod/c (local)</p>' in page
    assert page.count('<div class="cause">') == 1


def test_json_report_carries_argv_targets_and_queue_time_and_validates() -> None:
    schema = json.loads(resources.files("preflight.report").joinpath("schema.json").read_text())
    document = json.loads(JsonFormat().render(header_sample()))
    jsonschema.validate(document, schema)
    assert document["argv"] == ["preflight", "run", "-c", "p.yaml", "--report-dir", "/tmp/[REDACTED]"]
    assert document["targets"][1] == {"name": "dev", "region": "cn-shanghai", "workspace": None,
                                      "resource_group": None}
    assert document["results"][2]["timings"] == {"start_ms": 5.0, "duration_ms": 40.0, "queued_ms": 5.0}
    assert document["tool"]["host"] == "build-7"


def test_a_demo_run_records_its_command_line_masked_in_every_format(tmp_path: Path) -> None:
    from preflight.cli.main import main

    secret = "DW-typed0into0the0command0line0x"
    reports = tmp_path / secret
    assert main(["demo", "--report-dir", str(reports), "--format", "json", "--only", "config.valid"]) == 0
    document = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, json.loads(resources.files("preflight.report").joinpath("schema.json").read_text()))
    assert document["argv"][:2] == ["preflight", "demo"] and document["argv"][3].endswith("[REDACTED]")
    assert document["targets"][0]["region"] == "cn-beijing"
    for path in reports.iterdir():
        assert secret not in path.read_text(encoding="utf-8"), path.name
    assert "preflight demo --report-dir" in (reports / "report.html").read_text(encoding="utf-8")
