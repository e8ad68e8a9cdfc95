"""The region's PrivateLink endpoints are read page by page, once per run, and each service's endpoint in the first
VPC is found among them, while the group's bindings are still being asked for."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import checks.answers as answers
from preflight.cli.main import main
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import FIRST_VPC, SECOND_VPC, get_scenario, scaled_world


def test_every_page_of_the_regions_endpoints_is_read_and_the_first_vpcs_endpoint_chosen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(answers, "ENDPOINT_PAGE_SIZE", 2)
    world = scaled_world(5)
    # Odd services also allow a second VPC, listed first: their endpoint in the first VPC is the second one.
    models = tuple(dataclasses.replace(m, allowed_vpcs=(SECOND_VPC, FIRST_VPC)) if index % 2 else m
                   for index, m in enumerate(world.models))
    scenario = dataclasses.replace(get_scenario("healthy"), world=dataclasses.replace(world, models=models))
    with Simulator(scenario) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "paged.yaml"
        config.write_text(simulator.config_text())
        code = main(["run", "-c", str(config), "--format", "json", "--no-reports", "--only", "network.privatelink"])
        stats = simulator.stats()
    results = [r for r in json.loads(capsys.readouterr().out)["results"] if r["check"] == "network.privatelink"]
    assert code == 0 and len(results) == 5 and {r["status"] for r in results} == {"pass"}
    for result in results:
        (endpoint,) = result["evidence"]["endpoints"]
        odd = int(result["service"][-1]) % 2  # ms-bench00000 .. ms-bench00004, in the world's order
        assert endpoint["endpoint_id"] == f"ep-{result['service']}-{odd}" and endpoint["status"] == "Active"
    # 8 endpoints (5 in the first VPC, 3 in the second) at 2 a page: 4 pages, each asked once for all services.
    assert stats["cloud"]["ListVpcEndpoints"] == 4 and stats["cloud"]["ListVpcEndpointZones"] == 5
