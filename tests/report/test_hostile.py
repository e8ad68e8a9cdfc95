"""Reports of hostile text: secrets everywhere, markup, control characters, NaN; and replacing the last run's files."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from junitparser import JUnitXml

from preflight.engine.model import CheckResult, RunReport, Status, Timings
from preflight.engine.redact import REDACTOR
from preflight.report import ReportError, write_reports

CANARY = "hostile-canary-Zq81xVb2Lm0Tt"
TOOL = {"name": "dw-preflight", "version": "0.1.0", "python": "3.11.7", "platform": "Linux"}
MARKUP = '<script src="https://evil.example/x.js"></script><img src="http://evil.example/p.png">'
CONTROL = "nul\x00 bell\x07 esc\x1b[31m vt\x0b surrogate\ud800 end"
FILES = ["junit.xml", "report.html", "report.json", "report.md"]


def hostile() -> RunReport:
    results = (
        CheckResult(check="auth.key_valid", title="Key accepted", target="prod", service="qwen", status=Status.FAIL,
                    summary=f"HTTP 401 echoing the key {CANARY} {MARKUP}",
                    remediation=f"Replace {CANARY}; see {MARKUP}",
                    evidence={"echo": f"Bearer {CANARY}", "markup": MARKUP, "control": CONTROL,
                              "nan": math.nan, "inf": [math.inf, -math.inf], "raw": b"\xff\xfebytes",
                              "nested": {"deeper": (1, 2.5, None, True)}},
                    docs="javascript:alert(1)", timings=Timings(0.0, 12.0)),
        CheckResult(check="inference.completion", title="Completion", target="prod", service="qwen",
                    status=Status.ERROR, summary=f"check crashed: {CONTROL}", evidence={"exception": CONTROL},
                    timings=Timings(12.0, math.nan)),
        CheckResult(check="inference.stream", title="Stream", target="prod", service="qwen", status=Status.WARN,
                    summary="first token slow", remediation=f"ask about {CANARY}", timings=Timings(12.0, 900.0)),
    )
    return RunReport(tool=TOOL, started_at="2026-11-24T10:00:00+00:00", duration_ms=950.0, results=results,
                     notes=(f"note with {CANARY}",))


@pytest.fixture()
def written(tmp_path: Path) -> dict[str, str]:
    REDACTOR.add(CANARY, "api_key")
    paths = write_reports(hostile(), tmp_path / "deep" / "reports")
    assert sorted(path.name for path in paths) == FILES
    return {path.name: path.read_text(encoding="utf-8") for path in paths}


def test_a_secret_in_summary_remediation_evidence_and_notes_reaches_no_file(written: dict[str, str]) -> None:
    for name, text in written.items():
        assert CANARY not in text, name
        assert "[REDACTED]" in text, name  # the place where it was stays visible


def test_json_stays_strict_and_valid_with_nan_bytes_and_control_characters(written: dict[str, str]) -> None:
    def no_constants(token: str) -> object:
        raise AssertionError(f"non-standard JSON constant {token}")

    document = json.loads(written["report.json"], parse_constant=no_constants)
    schema = json.loads(resources.files("preflight.report").joinpath("schema.json").read_text())
    jsonschema.validate(document, schema)
    evidence = document["results"][0]["evidence"]
    assert evidence["nan"] == "nan" and evidence["inf"] == ["inf", "-inf"]
    assert evidence["nested"] == {"deeper": [1, 2.5, None, True]}
    assert document["results"][1]["timings"]["duration_ms"] == 0.0
    assert document["summary"] == {"status": "fail", "pass": 0, "warn": 1, "fail": 1, "skip": 0, "error": 1,
                                   "waived": 0}


def test_junit_parses_despite_characters_xml_cannot_carry(written: dict[str, str], tmp_path: Path) -> None:
    ET.fromstring(written["junit.xml"].encode("utf-8"))
    path = tmp_path / "junit.xml"
    path.write_text(written["junit.xml"], encoding="utf-8")
    suites = list(JUnitXml.fromfile(str(path)))
    assert [suite.name for suite in suites] == ["prod/qwen"]
    cases = {case.name: case for case in suites[0]}
    assert cases["auth.key_valid"].result[0].message.startswith("HTTP 401 echoing the key [REDACTED]")
    assert "\ufffd" in cases["inference.completion"].result[0].message
    assert type(cases["inference.completion"].result[0]).__name__ == "Error"
    assert "Fix: ask about [REDACTED]" in written["junit.xml"]  # warnings carry their advice too


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_escapes_markup_and_links_nothing_but_http_docs(written: dict[str, str]) -> None:
    page = written["report.html"]
    parser = _Tags()
    parser.feed(page)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "img", "link", "iframe", "object", "embed", "base", "meta http-equiv"}
    for tag, attrs in parser.tags:
        for attribute in ("src", "href", "srcset", "action", "poster", "background"):
            value = attrs.get(attribute)
            assert value is None or (tag == "a" and attribute == "href" and value.startswith("http")), (tag, attrs)
    assert "javascript:" not in "".join(str(attrs) for _, attrs in parser.tags)
    assert "@import" not in page and "url(" not in page
    # The markup survives as text a person can read in the ticket.
    assert any('<script src="https://evil.example/x.js">' in chunk for chunk in parser.text)
    assert page.index("auth.key_valid") < page.index("inference.stream")


def test_html_writes_quotes_as_they_are_and_escapes_only_markup(written: dict[str, str]) -> None:
    """Element content needs &, < and > escaped, not quotes: evidence JSON keeps its quotes readable in the source,
    and the page has few & for the last redaction pass to look at."""
    page = written["report.html"]
    assert "&quot;" not in page and "&#x27;" not in page
    assert '&lt;script src="https://evil.example/x.js"&gt;' in page
    assert '"markup": ' in page


def test_html_evidence_fields_are_what_plain_evidence_gives() -> None:
    """fields() encodes an object field by field as it is, and through plain() only when that is refused: the
    text must be what encoding plain() evidence field by field gives."""
    from preflight.report.base import encode_json, fields, plain

    def by_definition(value: object) -> str:
        value = plain(value)
        if isinstance(value, dict) and value:
            return "{\n" + ",\n".join(f"  {encode_json(k)}: {encode_json(v)}" for k, v in value.items()) + "\n}"
        return encode_json(value)

    evidence = [result.evidence for result in hostile().results] + [
        {"answers": ["10.0.0.1"], "elapsed_ms": 1.5, "ok": True, "none": None, "text": 'q"u\u2028ote\u00e9'},
        {1: "int key", "b": [1, {"c": math.nan}]}, {"bad": object()}, {None: 1, True: 2}, [1, "two"], "text", {}]
    for value in evidence:
        assert fields(value) == by_definition(value), value


def test_xml_text_replaces_exactly_what_xml_cannot_carry() -> None:
    from preflight.report.junit import _not_xml, xml_text

    samples = ["plain ascii", "tab\tline\ncr\r", "nul\x00", "del\x7f", "\x1b[31m", "\u00e9\u2028\ud800",
               "\ufffe\uffff", "\U0001f600", "", CONTROL, " ~"]
    samples += [chr(code) for code in range(0, 0x250)]
    for text in samples:
        assert xml_text(text) == _not_xml().sub("\ufffd", text), repr(text)


def test_markdown_and_console_text_keep_one_row_per_result(written: dict[str, str]) -> None:
    rows = [line for line in written["report.md"].splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3  # header and one per result, whatever the summaries contain


def test_each_run_replaces_the_previous_files(tmp_path: Path) -> None:
    first = hostile()
    write_reports(first, tmp_path)
    passed = CheckResult(check="endpoint.dns", title="DNS", target="staging", service=None, status=Status.PASS,
                         summary="resolves", timings=Timings(0.0, 1.0))
    second = RunReport(tool=TOOL, started_at="2026-11-24T11:00:00+00:00", duration_ms=5.0, results=(passed,))
    write_reports(second, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == FILES  # no temporary files left behind
    for name in FILES:
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "auth.key_valid" not in text and "endpoint.dns" in text, name


def test_an_unwritable_report_folder_is_a_report_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(ReportError, match="reports"):
        write_reports(hostile(), blocker)
    with pytest.raises(ReportError, match="cannot create the report folder"):
        write_reports(hostile(), blocker / "inside")


def test_the_console_shows_no_control_characters_from_a_server() -> None:
    import io
    import re

    from preflight.report.console import LiveConsole, render_final

    REDACTOR.add(CANARY, "api_key")
    for color in (False, True):
        out = io.StringIO()
        render_final(hostile(), out, color=color)
        text = out.getvalue()
        own_colours = re.sub("\x1b\\[[0-9;]*m", "", text) if color else text  # rich's own styles
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]", own_colours), text
        text.encode("utf-8")  # a strict UTF-8 terminal can print it
        assert CANARY not in text and "nul\ufffd bell\ufffd esc\ufffd[31m" in text
    stream = io.StringIO()
    live = LiveConsole(stream, plain=True, total=3)
    live.stage("prod", f"task log says {CONTROL}")
    for result in hostile().results:
        live.finished(result)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]", stream.getvalue())
    assert stream.getvalue().count("\n") == 4


def test_report_json_encodes_evidence_once_and_writes_what_plain_evidence_gives() -> None:
    """render() encodes each result strictly and falls back to plain() only where that fails; the text must be
    exactly what encoding plain() evidence gives, for hostile evidence (NaN, bytes, tuples) and ordinary alike."""
    from preflight.report.json import JsonFormat, layout, report_dict

    for run in (hostile(), RunReport(tool=TOOL, started_at="2026-01-01T00:00:00+00:00", duration_ms=1.0,
                                     results=hostile().results[2:])):
        assert JsonFormat().render(run) == layout(report_dict(run))


def test_a_subject_name_with_control_characters_reaches_neither_console_form() -> None:
    import dataclasses
    import io
    import re

    from preflight.report.console import render_final

    run = hostile()
    renamed = dataclasses.replace(run, results=tuple(dataclasses.replace(r, service="q\x1b[2Jwen")
                                                     for r in run.results))
    for color in (False, True):
        out = io.StringIO()
        render_final(renamed, out, color=color)
        text = out.getvalue()
        own_colours = re.sub("\x1b\\[[0-9;]*m", "", text) if color else text
        assert "\x1b[2J" not in text and not re.search("[\x00-\x08\x0b-\x1f\x7f]", own_colours), text
        assert "q\ufffd[2Jwen" in text
