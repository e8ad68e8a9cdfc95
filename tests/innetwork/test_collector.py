"""The in-network collector: stdlib only, old Pythons, an empty environment, and parity with the local run."""

from __future__ import annotations

import glob
import json
import os
import py_compile
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.config import parse_config
from preflight.probe.logs import decode_payload
from preflight.probe.script import build_collector_source, build_plan, build_shell_script
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import SCENARIOS, get_scenario

DATA_SCENARIOS = sorted(name for name, scenario in SCENARIOS.items() if scenario.plane in ("data", "-"))
OLD_PYTHONS = sorted(glob.glob("/root/.pyenv/versions/3.6*/bin/python3") + glob.glob("/usr/bin/python3.6"))


@pytest.fixture(scope="module")
def healthy() -> Iterator[Simulator]:
    with Simulator(get_scenario("healthy")) as simulator:
        yield simulator


def plan_for(simulator: Simulator, *, send_key: bool) -> dict[str, object]:
    config = parse_config(simulator.config_text(), "sim.yaml", {**os.environ, **simulator.environ()})
    return build_plan(config, config.targets[0], send_key=send_key)


def run_script(simulator: Simulator, source: str, python: str, *,
               shell: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PREFLIGHT_NAMESERVERS": f"127.0.0.1:{simulator.dns_port}"}  # nothing else: env -i
    argv = ["/bin/sh", "-c", source] if shell else [python, "-c", source]
    if shell:
        env["PATH"] = os.path.dirname(python)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_the_source_compiles_and_imports_only_the_standard_library(healthy: Simulator, tmp_path: Path) -> None:
    source = build_collector_source(plan_for(healthy, send_key=False))
    path = tmp_path / "collector.py"
    path.write_text(source)
    py_compile.compile(str(path), doraise=True)
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from ")) and not line.startswith("from __future__")}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


@pytest.mark.parametrize("python", [sys.executable, *OLD_PYTHONS])
def test_it_runs_with_an_empty_environment_and_never_prints_the_key(healthy: Simulator, python: str) -> None:
    plan = plan_for(healthy, send_key=True)
    result = run_script(healthy, build_shell_script(plan, python=os.path.basename(python)), python, shell=True)
    assert result.returncode == 0, result.stderr
    payload = decode_payload(result.stdout)
    observed = payload["targets"]["demo"]
    assert set(observed) == {"qwen", "qwen-chat", "bge-m3"}
    assert observed["qwen"]["stream"]["done"] is True and observed["bge-m3"]["embedding"]["status"] == 200
    for model in healthy.world.models:
        assert model.api_key not in result.stdout + result.stderr


def test_an_old_python_is_on_this_machine_kind() -> None:
    # The collector must run on Python 3.6; this machine kind ships one through pyenv, so the test above uses it.
    assert OLD_PYTHONS, "no Python 3.6 found to run the collector on"


def verdicts(report: dict[str, object]) -> dict[tuple[str, str | None], str]:
    planes = ("endpoint.", "auth.key_valid", "model.", "inference.")
    return {(r["check"], r["service"]): r["status"] for r in report["results"]  # type: ignore[index, union-attr]
            if r["check"].startswith(planes)}  # type: ignore[index]


@pytest.mark.parametrize("scenario", DATA_SCENARIOS)
def test_in_network_and_local_runs_agree(scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    codes = []
    reports = []
    for extra in ([], ["--from", "resource-group", "--send-key"]):
        codes.append(main(["demo", "--scenario", scenario, "--format", "json", "--no-reports", *extra]))
        reports.append(json.loads(capsys.readouterr().out))
    local, remote = (verdicts(report) for report in reports)
    assert local == remote
    assert codes[0] == codes[1]
    origins = {r["origin"] for r in reports[1]["results"] if r["check"].startswith("endpoint.dns")}
    assert origins == {"resource-group:" + get_scenario(scenario).world.resource_group_id}


def test_without_the_key_the_key_checks_run_here_and_say_so(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--format", "json", "--no-reports", "--from", "resource-group"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    origin = {r["check"]: r["origin"] for r in report["results"] if r["service"] == "qwen"}
    assert origin["endpoint.http"].startswith("resource-group:") and origin["auth.key_valid"] == "local"
    assert any("--send-key" in note for note in report["notes"])
    probe = next(r for r in report["results"] if r["check"] == "resource_group.probe")
    assert probe["status"] == "pass" and "without the key" in probe["summary"]
