"""A task that fails, hangs or loses its marked line is a result with its status and log tail, never a crash."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from preflight.cli.main import main
from preflight.simulator import scenarios
from preflight.simulator.scenarios import Scenario


@pytest.mark.parametrize(("mode", "status", "words"), [
    ("fail", "fail", "ended Failure"),
    ("hang", "fail", "did not finish in time"),
    ("cut-lines", "error", "truncated"),
])
def test_task_trouble_is_reported(mode: str, status: str, words: str, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    broken = Scenario(f"task-{mode}", f"ad hoc tasks {mode}", world=replace(scenarios.World(), task_mode=mode))
    monkeypatch.setitem(scenarios.SCENARIOS, broken.name, broken)
    code = main(["demo", "--scenario", broken.name, "--from", "resource-group", "--send-key", "--format", "json",
                 "--no-reports", "--only", "resource_group.probe", "--timeout", "8"])
    report = json.loads(capsys.readouterr().out)
    probe = next(r for r in report["results"] if r["check"] == "resource_group.probe")
    assert probe["status"] == status and words in probe["summary"], probe
    assert code == (1 if status == "fail" else 3)
    if mode != "hang":
        assert probe["evidence"]["log_tail"], probe["evidence"]
    for model in scenarios.World().models:
        assert model.api_key not in json.dumps(report)
