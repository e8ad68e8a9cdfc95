"""`preflight init` against the simulator: a config from what the account says, that loads and passes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from preflight.cli.main import main
from preflight.config import load_config
from preflight.simulator import scenarios
from preflight.simulator.harness import Simulator

WORKSPACE = scenarios.WORKSPACE_ID


@pytest.fixture()
def account(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    scenario = getattr(request, "param", scenarios.get_scenario("healthy"))
    with Simulator(scenario) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        yield simulator


def init(simulator: Simulator, *args: str) -> int:
    return main(["init", "--workspace", WORKSPACE, "--region", "cn-beijing", "--cloud-endpoint",
                 f"127.0.0.1:{simulator.cloud_port}", "--cloud-protocol", "http", *args])


def test_init_writes_a_config_from_the_account(account: Simulator, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "preflight.yaml"
    assert init(account, "-o", str(output)) == 0
    assert "wrote " + str(output) + ": 1 target(s), 3 service(s)" in capsys.readouterr().err
    text = output.read_text()
    assert f"resource_group: {scenarios.RESOURCE_GROUP_ID}" in text
    assert "# first VPC (model calls leave through it): vpc-2ze0first0000000001" in text
    assert "endpoint: http://ms-demoqwen01.cn-beijing.dataworks-model.aliyuncs.com" in text
    assert "api_key: ${DW_MS_DEMOQWEN01_KEY}" in text and "DW-ms-demo" not in text  # references, never keys
    assert "kind: embedding   # guessed from its id" in text and "kind: chat   # guessed" in text
    assert text.count("guessed") >= 4
    environ = {"DW_MS_DEMOQWEN01_KEY": "DW-x", "DW_MS_DEMOCHAT01_KEY": "DW-x", "DW_MS_DEMOBGE001_KEY": "DW-x"}
    config = load_config(output, environ)
    assert config.targets[0].workspace == WORKSPACE
    assert [s.name for s in config.targets[0].services] == ["ms-demobge001", "ms-demochat01", "ms-demoqwen01"]


def test_the_written_config_passes_the_control_checks(account: Simulator, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "preflight.yaml"
    assert init(account, "-o", str(output)) == 0
    for name in ("DW_MS_DEMOQWEN01_KEY", "DW_MS_DEMOCHAT01_KEY", "DW_MS_DEMOBGE001_KEY"):
        monkeypatch.setenv(name, "DW-not-sent-by-control-checks")
    capsys.readouterr()
    code = main(["run", "-c", str(output), "--only", "network.model_allowlist", "--format", "json", "--no-reports"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [(r["check"], r["summary"]) for r in report["results"] if r["status"] != "pass"]
    assert {r["status"] for r in report["results"]} == {"pass"}


def test_the_written_config_validates_against_the_schema(account: Simulator, capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    import jsonschema
    import yaml

    from preflight.config.schema import config_schema

    assert init(account, "-o", "-") == 0
    jsonschema.validate(yaml.safe_load(capsys.readouterr().out), config_schema())


def test_only_the_named_group(account: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(account, "--resource-group", scenarios.RESOURCE_GROUP_ID, "-o", "-") == 0
    assert capsys.readouterr().out.count("resource_group: ") == 1


SPREAD = dataclasses.replace(scenarios.get_scenario("healthy"), name="spread",
                             world=scenarios.scaled_world(4, resource_groups=2))


@pytest.mark.parametrize("account", [SPREAD], indirect=True)
def test_every_attached_group_is_a_target(account: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(account, "-o", "-") == 0
    text = capsys.readouterr().out
    assert "  - name: group-1" in text and "  - name: group-2" in text
    assert "resource_group: Serverless_res_group_bench_0001" in text


@pytest.mark.parametrize("account", [scenarios.get_scenario("rg-not-attached")], indirect=True)
def test_no_attached_group_is_a_clear_error(account: Simulator, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "preflight.yaml"
    assert init(account, "-o", str(output)) == 2
    assert capsys.readouterr().err == (f"preflight: no Serverless resource group is attached to workspace {WORKSPACE} "
                                       "in cn-beijing; attach one (DataWorks > Resource Groups > Associate "
                                       "Workspace), or check --workspace and --region\n")
    assert not output.exists()


@pytest.mark.parametrize("account", [scenarios.get_scenario("bad-credentials")], indirect=True)
def test_a_refused_call_names_the_action(account: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(account, "-o", "-") == 2
    err = capsys.readouterr().err
    assert err.startswith("preflight: the account could not be read (dataworks:ListResourceGroups): "
                          "SignatureDoesNotMatch")
    assert scenarios.ACCESS_KEY_SECRET not in err


def test_an_existing_file_is_kept_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "preflight.yaml"
    output.write_text("mine\n")
    assert main(["init", "--workspace", "1", "--region", "cn-beijing", "-o", str(output)]) == 2
    assert "exists; pass --force to replace it" in capsys.readouterr().err
    assert output.read_text() == "mine\n"


def test_a_bad_region_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--workspace", "1", "--region", "Beijing", "-o", "-"]) == 2
    assert "--region: expected a region id like cn-beijing, got 'Beijing'" in capsys.readouterr().err
