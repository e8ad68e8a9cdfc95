"""Waivers in the config: a waived fail or warn is `waived` in every format and does not fail the run."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.config import parse_config
from preflight.errors import ConfigError
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario

SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()
PAST = (dt.date.today() - dt.timedelta(days=1)).isoformat()
FAR = (dt.date.today() + dt.timedelta(days=200)).isoformat()


@pytest.fixture()
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    with Simulator(get_scenario(getattr(request, "param", "vpc-not-first"))) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        yield simulator


def run(simulator: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], waivers: str,
        *extra: str) -> tuple[int, dict]:
    config = tmp_path / "preflight.yaml"
    config.write_text(simulator.config_text() + waivers)
    reports = tmp_path / "reports"
    code = main(["run", "-c", str(config), "--format", "json", "--report-dir", str(reports), *extra])
    return code, json.loads(capsys.readouterr().out)


def allowlist_waiver(until: str = SOON, **more: str) -> str:
    lines = ["waivers:", "  - check: network.model_allowlist", "    reason: the second VPC is moved first on Monday",
             f"    until: {until}"] + [f"    {key}: {value}" for key, value in more.items()]
    return "\n".join(lines) + "\n"


def test_a_waived_failure_does_not_fail_the_run_and_keeps_what_it_was(
        world: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(world, tmp_path, capsys, allowlist_waiver(ticket="NET-42"))
    assert code == 0
    waived = [r for r in report["results"] if r["check"] == "network.model_allowlist"]
    assert waived and {r["status"] for r in waived} == {"waived"}
    assert waived[0]["waiver"]["original_status"] == "fail"
    assert waived[0]["waiver"]["reason"] == "the second VPC is moved first on Monday"
    assert waived[0]["waiver"]["until"] == SOON and waived[0]["waiver"]["ticket"] == "NET-42"
    assert "vpc-2ze0first0000000001" in waived[0]["summary"]  # the verdict itself is unchanged
    assert report["summary"]["status"] == "pass" and report["summary"]["waived"] == 3
    reports = tmp_path / "reports"
    schema = json.loads((Path(__file__).parents[2] / "preflight/report/schema.json").read_text())
    import jsonschema

    jsonschema.validate(json.loads((reports / "report.json").read_text()), schema)
    junit = ET.parse(reports / "junit.xml").getroot()
    case = next(c for c in junit.iter("testcase") if c.get("name") == "network.model_allowlist")
    skipped = case.find("skipped")
    assert skipped is not None and case.find("failure") is None
    assert skipped.get("message") == f"waived fail until {SOON} (NET-42): the second VPC is moved first on Monday"
    assert "🏷️ waived" in (reports / "report.md").read_text()
    assert "Waiver:" in (reports / "report.html").read_text()


def test_a_waived_result_shows_on_the_console(world: Simulator, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "preflight.yaml"
    config.write_text(world.config_text() + allowlist_waiver())
    assert main(["run", "-c", str(config), "--no-reports", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "WAIV  3 services: network.model_allowlist" in out
    assert f"[waived fail until {SOON}: the second VPC is moved first on Monday]" in out
    assert "PASS: " in out and "3 waived" in out


def test_an_expired_waiver_waives_nothing_and_says_so(world: Simulator, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(world, tmp_path, capsys, allowlist_waiver(PAST))
    assert code == 1
    assert {r["status"] for r in report["results"] if r["check"] == "network.model_allowlist"} == {"fail"}
    assert any(f"expired on {PAST} and no longer waives: network.model_allowlist on demo/qwen" in note
               for note in report["notes"])


@pytest.mark.parametrize("world", ["healthy"], indirect=True)
def test_a_waiver_that_matched_nothing_is_a_warning(world: Simulator, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run(world, tmp_path, capsys, allowlist_waiver(), "--strict")
    assert code == 1  # a stale waiver is a warning, and --strict fails on warnings
    assert any("network.model_allowlist on * (" in note and "matched no fail or warn" in note
               for note in report["notes"])
    valid = next(r for r in report["results"] if r["check"] == "config.valid")
    assert valid["status"] == "warn" and "matched no fail or warn" in valid["summary"]
    assert valid["evidence"]["stale_waivers"]


@pytest.mark.parametrize("world", ["slow"], indirect=True)
def test_a_waived_warning_passes_strict(world: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    waiver = ("waivers:\n  - {check: 'inference.*', target: demo, service: qwen, reason: the TTFT SLO is being "
              f"renegotiated, until: {SOON}}}\n")
    code, report = run(world, tmp_path, capsys, waiver, "--strict")
    assert code == 0
    stream = next(r for r in report["results"] if r["check"] == "inference.stream" and r["service"] == "qwen")
    assert stream["status"] == "waived" and stream["waiver"]["original_status"] == "warn"


def test_a_waiver_never_hides_an_error() -> None:
    from preflight.cli.waivers import apply_waivers
    from preflight.config import Waiver
    from preflight.engine.model import CheckResult, RunReport, Status

    crash = CheckResult("auth.key_valid", "t", "prod", "qwen", Status.ERROR, "the check raised KeyError")
    run_report = RunReport(tool={}, started_at="", duration_ms=0, results=(crash,))
    waived = apply_waivers(run_report, [Waiver("auth.*", "flaky", dt.date.today())])
    assert waived.results[0].status is Status.ERROR


def test_a_waiver_is_live_through_its_until_day() -> None:
    from preflight.cli.waivers import apply_waivers
    from preflight.config import Waiver
    from preflight.engine.model import CheckResult, RunReport, Status

    failed = CheckResult("network.privatelink", "t", "prod", "qwen", Status.FAIL, "no endpoint")
    run_report = RunReport(tool={}, started_at="", duration_ms=0, results=(failed,))
    day = dt.date(2027, 1, 31)
    waiver = Waiver("network.privatelink", "moving", day, target="prod", service="qw*")
    assert apply_waivers(run_report, [waiver], today=day).results[0].status is Status.WAIVED
    assert apply_waivers(run_report, [waiver], today=day + dt.timedelta(days=1)).results[0].status is Status.FAIL
    other = Waiver("network.privatelink", "moving", day, target="staging")
    assert apply_waivers(run_report, [other], today=day).results[0].status is Status.FAIL


BASE = "version: 1\nregion: cn-beijing\ntargets:\n  - name: prod\n"


@pytest.mark.parametrize(("waivers", "message"), [
    ("waivers:\n  - {check: '*', reason: all, until: 2027-01-31}\n",
     "preflight.yaml:6: waivers[0].check: '*' would waive every check; name a check id or a narrower pattern"),
    ("waivers:\n  - {check: '*.*', reason: all, until: 2027-01-31}\n", "would waive every check"),
    ("waivers:\n  - {check: auth.key_valid, until: 2027-01-31}\n", "preflight.yaml:6: waivers[0].reason: is required"),
    ("waivers:\n  - {check: auth.key_valid, reason: x}\n", "preflight.yaml:6: waivers[0].until: is required"),
    ("waivers:\n  - {check: auth.key_valid, reason: '  ', until: 2027-01-31}\n", "waivers[0].reason: is required"),
    ("waivers:\n  - {check: auth.key_valid, reason: x, until: next monday}\n",
     "preflight.yaml:6: waivers[0].until: expected a date like 2027-01-31, got 'next monday'"),
    ("waivers:\n  - {check: auth.key_valid, reason: x, until: 2027-01-31, owner: me}\n",
     "waivers[0].owner: unknown field"),
])
def test_bad_waivers_are_config_errors_naming_file_line_and_field(waivers: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + waivers, "preflight.yaml", today=dt.date(2027, 1, 1))
    assert message in str(caught.value)


def test_a_waiver_more_than_90_days_ahead_warns() -> None:
    text = BASE + f"waivers:\n  - check: auth.key_valid\n    reason: x\n    until: {FAR}\n"
    config = parse_config(text, "preflight.yaml")
    assert config.waivers[0].until.isoformat() == FAR
    assert [w for w in config.warnings if "waivers[0].until" in w and "more than 90 days ahead" in w]
    near = parse_config(BASE + f"waivers:\n  - {{check: auth.key_valid, reason: x, until: {SOON}}}\n", "p.yaml")
    assert near.warnings == ()
