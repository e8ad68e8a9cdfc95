"""What the control checks read from a real account's answers: deployed tasks, live bindings, every page of a zone,
the model's own record and endpoint, both error shapes, and `-v`'s raw answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import checks.answers as answers
from preflight.cli.main import main
from preflight.cloud.session import check_answer
from preflight.errors import CloudError
from preflight.simulator import scenarios
from preflight.simulator.harness import Simulator
from preflight.simulator.openapi import CloudApi, eni_ip
from preflight.simulator.scenarios import (
    ACCESS_KEY_SECRET,
    FIRST_VPC,
    OTHER_GROUP,
    RESOURCE_GROUP_ID,
    Scenario,
    SimBinding,
    World,
    get_scenario,
)


def demo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], world: World, *only: str,
         name: str = "custom") -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """`preflight demo` on a world of the test's own; results by check."""
    monkeypatch.setitem(scenarios.SCENARIOS, name, Scenario(name, "a test's world", world=world, plane="control"))
    selection = [arg for check in only for arg in ("--only", check)]
    code = main(["demo", "--scenario", name, "--format", "json", "--no-reports", *selection])
    by_check: dict[str, list[dict[str, Any]]] = {}
    for result in json.loads(capsys.readouterr().out)["results"]:
        by_check.setdefault(result["check"], []).append(result)
    return code, by_check


W = World()


# --- schedules -------------------------------------------------------------------------------------------


def test_a_changed_draft_is_noted_and_the_deployed_task_is_judged(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    nodes = (replace(W.nodes[0], resource_group_id=OTHER_GROUP, deployed_resource_group_id=RESOURCE_GROUP_ID),
             W.nodes[1])
    code, results = demo(monkeypatch, capsys, replace(W, nodes=nodes), "schedule.node_resource_group")
    (result,) = results["schedule.node_resource_group"]
    assert code == 0 and result["status"] == "pass", result
    assert "1 draft(s) changed" in result["summary"]
    first = result["evidence"]["nodes"][0]
    assert first["note"] == f"the draft says {OTHER_GROUP}, the deployed task runs on {RESOURCE_GROUP_ID}"
    assert first["deployed"] and first["task_id"] == W.nodes[0].task_id


def test_a_node_not_deployed_names_what_its_draft_says(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, results = demo(monkeypatch, capsys, get_scenario("node-not-deployed").world, "schedule.node_resource_group")
    (result,) = results["schedule.node_resource_group"]
    assert code == 1 and result["status"] == "fail"
    assert "scheduled runs will not happen until the node is deployed" in result["summary"]
    assert f"the draft says {RESOURCE_GROUP_ID}, trigger Scheduler" in result["summary"]


def test_a_task_deployed_elsewhere_names_both_groups(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, results = demo(monkeypatch, capsys, get_scenario("node-deployed-elsewhere").world,
                         "schedule.node_resource_group")
    (result,) = results["schedule.node_resource_group"]
    assert code == 1 and result["status"] == "fail"
    assert f"daily_summarise (700001234567) is deployed on {OTHER_GROUP}, not {RESOURCE_GROUP_ID}" in result["summary"]
    assert result["evidence"]["nodes"][0]["note"].startswith(f"the draft says {RESOURCE_GROUP_ID}")


# --- the first VPC ---------------------------------------------------------------------------------------


def binding(network_id: int, vpc: str, status: str, created: str) -> SimBinding:
    return SimBinding(network_id, vpc, f"vsw-{network_id}", f"sg-{network_id}", status, created)


def test_a_deleted_binding_is_shown_but_never_the_first(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, results = demo(monkeypatch, capsys, get_scenario("binding-deleted-first").world, "network.first_vpc")
    (result,) = results["network.first_vpc"]
    assert code == 0 and result["status"] == "pass"
    assert result["evidence"]["first_vpc"] == FIRST_VPC
    assert [b["vpc"] for b in result["evidence"]["deleted_bindings"]] == [scenarios.OLD_VPC]
    assert scenarios.OLD_VPC not in [b["vpc"] for b in result["evidence"]["bindings"]]
    assert f"not counting {scenarios.OLD_VPC} Deleted" in result["summary"]


def test_a_first_live_binding_still_creating_says_to_wait(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bindings = (binding(900, "vpc-gone", "Deleting", "2025-01-01T00:00:00Z"),
                binding(901, FIRST_VPC, "Creating", "2026-01-01T00:00:00Z"),
                binding(902, "vpc-later", "Running", "2026-02-01T00:00:00Z"))
    code, results = demo(monkeypatch, capsys, replace(W, bindings=bindings), "network.first_vpc")
    (result,) = results["network.first_vpc"]
    assert code == 1 and result["status"] == "fail"
    assert result["summary"].startswith(f"the first binding ({FIRST_VPC}) is still Creating")
    assert "Wait until the binding is Running" in result["remediation"]


def test_only_deleted_bindings_is_no_live_binding(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bindings = (binding(900, "vpc-gone", "Deleted", "2025-01-01T00:00:00Z"),)
    code, results = demo(monkeypatch, capsys, replace(W, bindings=bindings), "network.first_vpc")
    (result,) = results["network.first_vpc"]
    assert code == 1 and "has no live VPC binding (1 binding(s) Deleting or Deleted: vpc-gone Deleted)" in \
        result["summary"]


# --- every page of a zone, and the model's own record ----------------------------------------------------


def test_every_page_of_the_zone_is_read_for_the_models_own_record(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(answers, "RECORD_PAGE_SIZE", 10)
    with Simulator(get_scenario("zone-records-paged")) as simulator:  # 24 filler records, then the model's
        for variable, value in simulator.environ().items():
            monkeypatch.setenv(variable, value)
        config = tmp_path / "paged.yaml"
        config.write_text(simulator.config_text())
        code = main(["run", "-c", str(config), "--format", "json", "--no-reports", "--only", "network.private_dns"])
        stats = simulator.stats()
    results = [r for r in json.loads(capsys.readouterr().out)["results"] if r["check"] == "network.private_dns"]
    assert code == 0 and [r["status"] for r in results] == ["pass"] * 3
    for index, result in enumerate(results):
        assert result["evidence"]["records"] == [{"rr": "@", "type": "A", "value": eni_ip(index, 0),
                                                  "status": "ENABLE"}]
        assert result["evidence"]["record_count"] == 25 and result["evidence"]["records_complete"]
    assert stats["cloud"]["DescribeZoneRecords"] == 3 * 3, "three pages of ten for each of three zones"


def test_a_zone_without_the_models_record_fails_even_with_other_records(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    real = CloudApi._zone_records
    monkeypatch.setattr(CloudApi, "_zone_records", lambda self, index: real(self, index)[:-1])
    code, results = demo(monkeypatch, capsys, get_scenario("zone-records-paged").world, "network.private_dns")
    assert code == 1
    for result in results["network.private_dns"]:
        assert result["status"] == "fail" and "has no enabled record for" in result["summary"]
        assert "24 record(s), none for it" in result["summary"]


def test_no_zone_in_the_account_is_a_warning_not_a_failure(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(CloudApi, "describe_zone_vpc_tree", lambda self, params: {"Zones": {"Zone": []}})
    code, results = demo(monkeypatch, capsys, W, "network.private_dns", "network.privatelink")
    assert code == 0
    for result in results["network.private_dns"]:
        assert result["status"] == "warn" and result["summary"].startswith("cannot tell which zone serves")
        assert result["evidence"]["assumption"] == "docs/cloud-assumptions.md"
    for result in results["network.privatelink"]:  # nothing to confirm the name with: said so
        assert result["status"] == "pass" and "identified by its service name only" in result["summary"]


# --- the model's endpoint, by more than its service name -------------------------------------------------


def rename_endpoints(monkeypatch: pytest.MonkeyPatch, service_name: Callable[[dict[str, Any]], str]) -> None:
    """Make the simulator's PrivateLink endpoints carry another service name than the model's."""
    real = CloudApi.list_vpc_endpoints

    def renamed(self: CloudApi, params: dict[str, str]) -> dict[str, Any]:
        answer = real(self, params)
        for endpoint in answer["Endpoints"]:
            endpoint["ServiceName"] = service_name(endpoint)
        return answer

    monkeypatch.setattr(CloudApi, "list_vpc_endpoints", renamed)


def test_an_endpoint_is_found_by_its_address_when_its_service_name_is_another(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rename_endpoints(monkeypatch,
                     lambda endpoint: f"com.aliyuncs.privatelink.cn-beijing.epsrv-{endpoint['EndpointId']}")
    code, results = demo(monkeypatch, capsys, W, "network.privatelink")
    assert code == 0
    for result in results["network.privatelink"]:
        assert result["status"] == "pass", result
        endpoint = next(e for e in result["evidence"]["endpoints"] if e["record_points_here"])
        assert endpoint["endpoint_id"] == f"ep-{result['summary'].split()[0][3:-2]}-0"
        assert not endpoint["named_for_model"]


def test_an_endpoint_whose_address_is_not_the_records_is_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    real = CloudApi.list_vpc_endpoint_zones

    def elsewhere(self: CloudApi, params: dict[str, str]) -> dict[str, Any]:
        answer = real(self, params)
        for zone in answer["Zones"]:
            zone["EniIp"] = "192.168.250.250"
        return answer

    monkeypatch.setattr(CloudApi, "list_vpc_endpoint_zones", elsewhere)
    code, results = demo(monkeypatch, capsys, W, "network.privatelink")
    assert code == 0
    for result in results["network.privatelink"]:
        assert result["status"] == "warn" and result["summary"].startswith("cannot tell which endpoint serves")
        assert "192.168.250.250" in result["summary"] and result["evidence"]["record_points_to"]


# --- both shapes of Success: false -----------------------------------------------------------------------


@pytest.mark.parametrize("fields", [{"Code": "Invalid.Thing", "Message": "no such thing"},
                                    {"ErrorCode": "Invalid.Thing", "ErrorMessage": "no such thing"}])
def test_success_false_is_read_in_either_shape(fields: dict[str, str]) -> None:
    with pytest.raises(CloudError) as caught:
        check_answer("dataworks", "GetResourceGroup", {"Success": False, "RequestId": "R-1", **fields})
    error = caught.value
    assert (error.code, error.request_id, error.action, error.status_code) == (
        "Invalid.Thing", "R-1", "dataworks:GetResourceGroup", 200)
    assert str(error) == "GetResourceGroup answered HTTP 200 with Success: false (Invalid.Thing: no such thing)"


def test_the_summary_of_an_old_shaped_error_names_action_code_and_request_id(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(scenarios.SCENARIOS, "old-error", replace(get_scenario("cloud-error-code"), name="old-error"))
    main(["demo", "--scenario", "old-error", "--format", "json", "--no-reports", "--only", "resource_group.ready"])
    (result,) = [r for r in json.loads(capsys.readouterr().out)["results"] if r["check"] == "resource_group.ready"]
    assert result["status"] == "fail"
    for word in ("GetResourceGroup", "InternalError.System", "request id 5E1C0A6B-"):
        assert word in result["summary"], result["summary"]


# --- -v --------------------------------------------------------------------------------------------------


def test_verbose_prints_every_call_and_its_raw_answer_redacted(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--from", "resource-group", "--send-key", "--format", "json", "--no-reports", "-v",
                 "--timeout", "60"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("cloud ")]
    assert code == 0
    actions = {line.split()[1] for line in lines}
    assert {"sts:GetCallerIdentity", "dataworks:ExecuteAdhocWorkflowInstance", "dataworks:GetTask",
            "pvtz:DescribeZoneRecords", "privatelink:ListVpcEndpointZones"} <= actions
    submitted = next(line for line in lines if "ExecuteAdhocWorkflowInstance" in line)
    assert '"Owner": "207000000000001"' in submitted and "characters)" in submitted  # the script, shortened
    keys = [m.api_key for m in W.models]
    assert not [secret for secret in (ACCESS_KEY_SECRET, *keys) if secret in captured.err]
    records = next(line for line in lines if "DescribeZoneRecords" in line)
    request, _, answer = records.partition(" -> ")
    assert json.loads(request.split(" ", 2)[2])["PageSize"] == 100 and json.loads(answer)["Records"]["Record"]


def test_no_zone_and_no_endpoint_named_for_the_model_leaves_the_allowlist_unverified(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(CloudApi, "describe_zone_vpc_tree", lambda self, params: {"Zones": {"Zone": []}})
    rename_endpoints(monkeypatch, lambda endpoint: "com.aliyuncs.privatelink.cn-beijing.epsrv-unknown")
    code, results = demo(monkeypatch, capsys, W, "network.model_allowlist")
    assert code == 0
    for result in results["network.model_allowlist"]:
        assert result["status"] == "warn" and result["summary"].startswith("cannot verify: no PrivateZone zone")
        assert result["evidence"]["assumption"] == "docs/cloud-assumptions.md"
