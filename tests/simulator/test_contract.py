"""The SDKs' request contract: read right from their sources, enforced on the wire, and kept by every scenario's run."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from preflight.cli.main import main
from preflight.simulator.contract import Contract, Operation
from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    REGION,
    RESOURCE_GROUP_ID,
    SCENARIOS,
    WORKSPACE_ID,
    get_scenario,
)
from preflight.simulator.signature import canonical_query


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(get_scenario("healthy")) as running:
        yield running


def facts(operation: Operation | None) -> dict[str, tuple[str, str, bool]]:
    assert operation is not None
    return {wire: (p.place, p.type, p.required) for wire, p in operation.parameters.items()}


# --- the reader ------------------------------------------------------------------------------------------


def test_execute_adhoc_is_a_post_form_body_with_an_integer_bizdate_and_a_required_owner(contract: Contract) -> None:
    operation = contract.operation("dataworks", "ExecuteAdhocWorkflowInstance")
    assert operation is not None and operation.method == "POST"
    found = facts(operation)
    assert found["BizDate"] == ("body", "integer", False)
    assert found["Owner"] == ("body", "string", True)
    assert found["ProjectId"] == ("body", "integer", True)
    assert found["Tasks"] == ("body", "string", True)  # tasks_shrink: the list travels as JSON
    assert operation.parameters["Tasks"].model_type == "List[main_models.ExecuteAdhocWorkflowInstanceRequestTasks]"
    assert set(operation.items_required["Tasks"]) == {"ClientUniqueCode", "Name", "Owner", "RuntimeResource", "Type"}


def test_the_reader_knows_methods_places_types_and_required_fields(contract: Contract) -> None:
    listing = contract.operation("dataworks", "ListTaskInstances")
    assert listing is not None and listing.method == "POST"
    assert facts(listing)["Bizdate"] == ("body", "integer", True)
    assert facts(listing)["WorkflowInstanceId"] == ("body", "integer", False)
    project = contract.operation("dataworks", "GetProject")
    assert project is not None and project.method == "GET" and facts(project) == {"Id": ("query", "integer", True)}
    task = contract.operation("dataworks", "GetTask")
    assert task is not None and task.method == "GET"
    assert facts(task) == {"Id": ("query", "integer", True), "ProjectEnv": ("query", "string", False)}
    node = contract.operation("dataworks", "GetNode")
    assert node is not None and facts(node)["Id"] == ("query", "string", True)
    for product, action in (("dataworks", "ListResourceGroupAssociateProjects"), ("pvtz", "DescribeZoneVpcTree"),
                            ("pvtz", "DescribeZoneRecords"), ("privatelink", "ListVpcEndpoints"),
                            ("privatelink", "ListVpcEndpointZones"), ("sts", "GetCallerIdentity")):
        operation = contract.operation(product, action)
        assert operation is not None and operation.method == "POST", action
    # pvtz and privatelink send their POSTs' parameters in the query, not in a form body.
    records = contract.operation("pvtz", "DescribeZoneRecords")
    assert facts(records)["ZoneId"] == ("query", "string", True)
    assert facts(records)["PageSize"] == ("query", "integer", False)
    assert facts(contract.operation("privatelink", "ListVpcEndpoints"))["RegionId"] == ("query", "string", True)
    assert facts(contract.operation("sts", "GetCallerIdentity")) == {}
    networks = contract.operation("dataworks", "ListNetworks")
    assert networks is not None and networks.method == "GET"
    assert facts(networks)["ResourceGroupId"] == ("query", "string", True)
    # A flattened list entry belongs to its list.
    zones = contract.operation("privatelink", "ListVpcEndpoints")
    assert zones is not None and zones.parameter("Tag.1.Key") is zones.parameters["Tag"]


def test_an_action_the_sdk_lacks_or_a_product_without_an_sdk_has_no_contract(contract: Contract) -> None:
    assert contract.operation("dataworks", "DeleteEverything") is None
    assert contract.operation("nosuchproduct", "GetProject") is None


# --- the checker on the wire -----------------------------------------------------------------------------


def signed(port: int, method: str, action: str, query: dict[str, str], form: dict[str, str]) -> tuple[int, Any]:
    """One request signed by hand (ACS3-HMAC-SHA256), so nothing but the test decides what is sent."""
    raw_query = urllib.parse.urlencode(query)
    body = urllib.parse.urlencode(form).encode()
    body_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": "127.0.0.1", "x-acs-action": action, "x-acs-version": "2024-05-18",
               "x-acs-content-sha256": body_hash, "x-acs-date": "2026-11-24T00:00:00Z"}
    names = sorted(headers)
    lines = "".join(f"{name}:{headers[name]}\n" for name in names)
    request = f"{method}\n/\n{canonical_query(raw_query)}\n{lines}\n{';'.join(names)}\n{body_hash}"
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(request.encode()).hexdigest()
    signature = hmac.new(ACCESS_KEY_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"ACS3-HMAC-SHA256 Credential={ACCESS_KEY_ID},SignedHeaders={';'.join(names)}," \
                               f"Signature={signature}"
    if form:
        headers["content-type"] = "application/x-www-form-urlencoded"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, f"/?{raw_query}" if raw_query else "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def task(**changes: Any) -> dict[str, Any]:
    return {"ClientUniqueCode": "c1", "Name": "probe", "Owner": "207000000000001", "Type": "DIDE_SHELL",
            "Script": {"Content": "echo hi"}, "RuntimeResource": {"ResourceGroupId": RESOURCE_GROUP_ID},
            "Timeout": 30, **changes}


def submission(**changes: Any) -> dict[str, str]:
    form = {"ProjectId": WORKSPACE_ID, "Name": "preflight", "Owner": "207000000000001", "EnvType": "Prod",
            "BizDate": "1764432000000", "Tasks": json.dumps([task()]), **changes}
    return {key: value for key, value in form.items() if value is not None}


def test_a_submission_as_the_sdk_sends_it_is_accepted_and_records_nothing(simulator: Simulator) -> None:
    status, body = signed(simulator.cloud_port, "POST", "ExecuteAdhocWorkflowInstance", {}, submission())
    assert status == 200 and body["WorkflowInstanceId"]
    assert simulator.deviations() == [] and simulator.refusals() == []


def test_a_submission_without_owner_is_missing_parameter(simulator: Simulator) -> None:
    status, body = signed(simulator.cloud_port, "POST", "ExecuteAdhocWorkflowInstance", {}, submission(Owner=None))
    assert (status, body["Code"]) == (400, "MissingParameter")
    assert body["Message"] == 'The input parameter "Owner" that is mandatory for processing this request is not ' \
                              'supplied.'
    status, body = signed(simulator.cloud_port, "POST", "ExecuteAdhocWorkflowInstance", {},
                          submission(Tasks=json.dumps([task(Owner=None)])))
    assert (status, body["Code"]) == (400, "MissingParameter") and '"Tasks.1.Owner"' in body["Message"]
    assert [(r["action"], r["kind"], r["parameter"]) for r in simulator.refusals()] == [
        ("ExecuteAdhocWorkflowInstance", "missing", "Owner"),
        ("ExecuteAdhocWorkflowInstance", "missing", "Tasks.1.Owner")]
    assert simulator.stats()["refusals"] == simulator.refusals()
    assert simulator_runs(simulator) == [], "a refused submission never runs"


def simulator_runs(simulator: Simulator) -> list[Any]:
    cloud = simulator.cloud
    assert cloud is not None
    return list(cloud.workflows.tasks.values())


def test_a_date_string_bizdate_is_invalid_parameter(simulator: Simulator) -> None:
    status, body = signed(simulator.cloud_port, "POST", "ExecuteAdhocWorkflowInstance", {},
                          submission(BizDate="2026-11-30"))
    assert (status, body["Code"]) == (400, "InvalidParameter") and '"BizDate"' in body["Message"]
    status, body = signed(simulator.cloud_port, "POST", "ListTaskInstances", {},
                          {"ProjectId": WORKSPACE_ID, "Bizdate": "2026-11-30", "WorkflowInstanceId": "1"})
    assert (status, body["Code"]) == (400, "InvalidParameter") and '"Bizdate"' in body["Message"]
    assert simulator_runs(simulator) == [], "a refused submission never runs"


def test_the_real_sdk_is_refused_without_owner_and_the_generic_client_for_a_date_string() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_dataworks_public20240518.client import Client
    from alibabacloud_tea_openapi.client import Client as Generic
    from alibabacloud_tea_openapi.exceptions import ClientException
    from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions

    with Simulator(get_scenario("healthy")) as simulator:
        config = Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, region_id=REGION,
                        endpoint=f"127.0.0.1:{simulator.cloud_port}", protocol="http")
        request = models.ExecuteAdhocWorkflowInstanceRequest(
            project_id=int(WORKSPACE_ID), name="preflight", env_type="Prod", biz_date=1764432000000,
            tasks=[models.ExecuteAdhocWorkflowInstanceRequestTasks(
                client_unique_code="c1", name="probe", owner="207000000000001", type="DIDE_SHELL",
                script=models.ExecuteAdhocWorkflowInstanceRequestTasksScript(content="echo hi"),
                runtime_resource=models.ExecuteAdhocWorkflowInstanceRequestTasksRuntimeResource(
                    resource_group_id=RESOURCE_GROUP_ID))])
        with pytest.raises(ClientException) as caught:
            Client(config).execute_adhoc_workflow_instance(request)
        assert (caught.value.code, caught.value.status_code) == ("MissingParameter", 400)
        assert '"Owner"' in caught.value.message
        api = Params(action="ExecuteAdhocWorkflowInstance", version="2024-05-18", protocol="HTTP", pathname="/",
                     method="POST", auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
        with pytest.raises(ClientException) as caught:
            Generic(config).call_api(api, OpenApiRequest(body=submission(BizDate="2026-11-30")), RuntimeOptions())
        assert caught.value.code == "InvalidParameter" and '"BizDate"' in caught.value.message
        request.owner = "207000000000001"
        assert Client(config).execute_adhoc_workflow_instance(request).body.workflow_instance_id
        assert simulator.deviations() == []


def test_a_get_where_the_sdk_posts_and_other_departures_are_recorded(simulator: Simulator) -> None:
    query = {"ProjectId": WORKSPACE_ID, "Bizdate": "1764432000000", "WorkflowInstanceId": "1", "Colour": "blue"}
    status, body = signed(simulator.cloud_port, "GET", "ListTaskInstances", query, {})
    assert (status, body["Code"]) == (400, "Invalid.WorkflowInstance.NotFound"), "answered anyway"
    found = {(d["action"], d["kind"], d["parameter"]) for d in simulator.deviations()}
    assert found == {("ListTaskInstances", "method", None), ("ListTaskInstances", "place", "ProjectId"),
                     ("ListTaskInstances", "place", "Bizdate"), ("ListTaskInstances", "place", "WorkflowInstanceId"),
                     ("ListTaskInstances", "unknown", "Colour")}
    method = next(d for d in simulator.deviations() if d["kind"] == "method")
    assert method["detail"] == "GET where the SDK sends POST" and method["count"] == 1
    signed(simulator.cloud_port, "GET", "ListTaskInstances", query, {})
    assert next(d for d in simulator.deviations() if d["kind"] == "method")["count"] == 2
    assert simulator.stats()["deviations"] == simulator.deviations() and simulator.refusals() == []


# --- every scenario keeps the contract -------------------------------------------------------------------


def run_scenario(name: str, origin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with Simulator(get_scenario(name)) as simulator:
        for variable, value in simulator.environ().items():
            monkeypatch.setenv(variable, value)
        config = tmp_path / f"{name}.yaml"
        config.write_text(simulator.config_text())
        extra = ["--from", "resource-group", "--send-key"] if origin == "resource-group" else []
        main(["run", "-c", str(config), "--format", "json", "--no-reports", *extra])
        capsys.readouterr()
        return simulator.deviations(), simulator.refusals()


@pytest.mark.parametrize("origin", ["local", "resource-group"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_keeps_the_sdk_contract(name: str, origin: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    deviations, refusals = run_scenario(name, origin, tmp_path, monkeypatch, capsys)
    lines = [f"{'refused' if found in refusals else 'deviation'}: {found['action']} {found['kind']} "
             f"{found['parameter'] or ''}: {found['detail']}" for found in refusals + deviations]
    assert not lines, "\n".join(lines)
