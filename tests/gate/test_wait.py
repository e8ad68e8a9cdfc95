"""`run --wait` against the simulator: rounds until ready, a stop at once on what waiting cannot change."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.cli.wait import parse_duration, round_line
from preflight.errors import UsageError
from preflight.simulator import scenarios

WARMING = scenarios.SCENARIOS["warming-up"]


@pytest.fixture()
def quick_warm_up(monkeypatch: pytest.MonkeyPatch) -> str:
    """The warming-up scenario with a service that is 503 for 0.5 s and refuses its key for 1.2 s."""
    world = dataclasses.replace(WARMING.world, warm_up_s=0.5, key_delay_s=1.2)
    monkeypatch.setitem(scenarios.SCENARIOS, "warming-up-quick", dataclasses.replace(WARMING, name="warming-up-quick",
                                                                                      world=world))
    return "warming-up-quick"


def demo(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(["demo", "--format", "json", "--report-dir", str(tmp_path), *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_a_warming_up_service_passes_after_a_few_rounds(quick_warm_up: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = demo(tmp_path, capsys, "--scenario", quick_warm_up, "--wait", "30s", "--interval", "0.3")
    assert code == 0
    wait = report["wait"]
    assert wait["stopped"] == "passed"
    rounds = wait["rounds"]
    assert len(rounds) >= 2 and rounds[-1]["status"] == "pass" and rounds[-1]["failing"] == []
    assert "auth.key_valid on demo/qwen" in rounds[0]["failing"]
    # The results are the last round's: everything that applies passes.
    assert {result["status"] for result in report["results"]} <= {"pass", "skip"}
    first = {(item["check"], item["service"]): item for item in wait["first_passed"]}
    assert first[("config.valid", None)]["round"] == 1
    assert first[("auth.key_valid", "qwen")]["round"] > 1
    assert first[("auth.key_valid", "qwen")]["at_s"] >= 1.0  # asked again after the key applied, not memoised
    # Later rounds ran only what had not passed, and what it had blocked.
    assert all(later["ran"] < rounds[0]["ran"] for later in rounds[1:])
    assert report["duration_ms"] >= rounds[-1]["at_s"] * 1000  # the report spans the whole wait
    schema = json.loads((Path(__file__).parents[2] / "preflight/report/schema.json").read_text())
    import jsonschema

    jsonschema.validate(report, schema)


def test_each_round_is_a_line_on_the_console(quick_warm_up: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--scenario", quick_warm_up, "--wait", "30s", "--interval", "0.3",
                 "--report-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0
    rounds = [line for line in err.splitlines() if line.startswith("round ")]
    assert rounds[0].startswith("round 1: 3 still failing: auth.key_valid on demo/")
    assert rounds[-1] == f"round {len(rounds)}: everything passes"


@pytest.mark.parametrize(("scenario", "check"), [("vpc-not-first", "network.model_allowlist"),
                                                 ("bearer-prefix", "auth.key_format")])
def test_a_failure_waiting_cannot_change_stops_the_wait_at_once(scenario: str, check: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = demo(tmp_path, capsys, "--scenario", scenario, "--wait", "10m", "--interval", "5")
    assert code == 1
    wait = report["wait"]
    assert wait["stopped"] == "cannot-wait" and len(wait["rounds"]) == 1
    assert wait["stopped_by"] and all(item.startswith(check + " on ") for item in wait["stopped_by"])


def test_the_wait_ends_when_its_time_is_spent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = demo(tmp_path, capsys, "--scenario", "wrong-key", "--wait", "1s", "--interval", "0.3")
    assert code == 1  # as `run` exits for a failure
    wait = report["wait"]
    assert wait["stopped"] == "time" and len(wait["rounds"]) >= 2
    assert all("auth.key_valid on demo/qwen" in item["failing"] for item in wait["rounds"])
    assert not any(item["check"] == "auth.key_valid" for item in wait["first_passed"])


def test_without_wait_the_report_has_no_wait(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = demo(tmp_path, capsys, "--scenario", "healthy")
    assert code == 0 and "wait" not in report


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0),
                                                ("500ms", 0.5), (" 2.5s ", 2.5)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-1s", "ten minutes", "5d", "1e3"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--wait: expected a positive duration"):
        parse_duration(text)


def test_a_bad_wait_exits_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--wait", "soon", "--no-reports"]) == 2
    assert "--wait: expected a positive duration like 90s, 10m or 1h, got 'soon'" in capsys.readouterr().err


def test_a_round_line_names_at_most_five_then_counts() -> None:
    from preflight.engine.model import CheckResult, Status

    results = [CheckResult(f"c.x{i}", "t", "prod", f"s{i}", Status.FAIL, "no") for i in range(7)]
    line = round_line(3, results)
    assert line.startswith("round 3: 7 still failing: c.x0 on prod/s0, ")
    assert line.endswith("c.x4 on prod/s4, and 2 more")


def test_checks_declare_whether_waiting_can_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--format", "json"]) == 0
    waitable = {item["id"]: item["waitable"] for item in json.loads(capsys.readouterr().out)}
    for check_id in ("config.valid", "endpoint.url", "auth.key_format", "network.model_allowlist"):
        assert waitable[check_id] is False, check_id
    for check_id in ("auth.key_valid", "endpoint.dns", "inference.completion", "network.first_vpc"):
        assert waitable[check_id] is True, check_id


def test_an_undeclared_check_may_wait_when_it_asks_something() -> None:
    from preflight.engine.model import Outcome
    from preflight.engine.registry import check

    async def probe(context: object) -> Outcome:
        return Outcome.passed("ok")

    assert check("pack.remote", "asks an API", plane="control")(probe).can_wait is True
    assert check("pack.local", "reads the config", plane="-")(probe).can_wait is False
    assert check("pack.pinned", "declared", plane="data", waitable=False)(probe).can_wait is False
