"""A fleet over several regions under the account's flow control: paced green, or throttling named past a deadline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from preflight.cli.main import main
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import get_scenario, scaled_world

CONTROL_PLANE = ["resource_group.attached", "schedule.node_resource_group", "network.private_dns",
                 "network.privatelink"]


def fleet_run(simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
              ) -> tuple[int, dict[str, Any]]:
    for name, value in simulator.environ().items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "fleet.yaml"
    path.write_text(simulator.config_text())
    only = [word for check in CONTROL_PLANE for word in ("--only", check)]
    code = main(["run", "-c", str(path), *only, "--format", "json", "--no-reports", *extra])
    return code, simulator.stats()


def test_a_fleet_over_two_regions_under_flow_control_ends_green(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    world = scaled_world(12, targets=6, resource_groups=6, regions=2)
    scenario = dataclasses.replace(get_scenario("cloud-flow-control"), world=world)
    with Simulator(scenario) as simulator:
        code, stats = fleet_run(simulator, tmp_path, monkeypatch)
    report = json.loads(capsys.readouterr().out)
    failed = [(r["target"], r["check"], r["summary"]) for r in report["results"] if r["status"] in ("fail", "error")]
    assert code == 0 and not failed, failed
    # Each region answered its own targets' questions; the client met the limit and adapted to it.
    assert set(stats["cloud_by_region"]) == {"cn-beijing", "cn-hangzhou"}
    assert stats["cloud_by_region"]["cn-hangzhou"]["GetResourceGroup"] >= 3 and stats["throttled"]


def test_throttling_that_outlasts_the_deadline_is_reported_as_throttling(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    world = scaled_world(16, targets=16, resource_groups=16)
    scenario = dataclasses.replace(get_scenario("cloud-flow-control"), world=world, rate_limit=0.5)
    with Simulator(scenario) as simulator:
        code, stats = fleet_run(simulator, tmp_path, monkeypatch, "--timeout", "4")
    report = json.loads(capsys.readouterr().out)
    ready = [r for r in report["results"] if r["check"] == "resource_group.ready"]
    throttled = [r for r in ready if "throttled by the account's flow control" in r["summary"]]
    assert code == 1 and throttled, [r["summary"] for r in ready]
    assert all("raise the limit or run fewer targets at once" in r["summary"] for r in throttled)
    # Never a verdict about the resource: the others passed, none says the group is not Normal.
    assert all(r["status"] == "pass" or r in throttled for r in ready), [r["summary"] for r in ready]
    assert stats["throttled"].get("GetResourceGroup")
