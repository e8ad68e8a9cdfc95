"""Every simulated operation, read back through the generated SDK clients: no field the models do not know."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from preflight.simulator.harness import Simulator
from preflight.simulator.scenarios import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    FIRST_VPC,
    REGION,
    RESOURCE_GROUP_ID,
    SECOND_VPC,
    WORKSPACE_ID,
    get_scenario,
)

VERSIONS = {"dataworks": "2024-05-18", "pvtz": "2018-01-01", "privatelink": "2020-04-15", "vpc": "2016-04-28",
            "sts": "2015-04-01"}


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    with Simulator(get_scenario("healthy")) as running:
        yield running


def config(port: int) -> Any:
    from alibabacloud_tea_openapi.utils_models import Config

    return Config(access_key_id=ACCESS_KEY_ID, access_key_secret=ACCESS_KEY_SECRET, endpoint=f"127.0.0.1:{port}",
                  protocol="http", region_id=REGION, read_timeout=5000, connect_timeout=2000)


def raw(port: int, product: str, action: str, **params: Any) -> dict[str, Any]:
    """The body exactly as the server sent it, through the generic tea-openapi client, sent as the SDK sends it."""
    from alibabacloud_tea_openapi.client import Client
    from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions

    from preflight.simulator.contract import shared

    operation = shared().operation(product, action)
    assert operation is not None
    api = Params(action=action, version=VERSIONS[product], protocol="HTTP", pathname="/", method=operation.method,
                 auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    values = {key: str(value) for key, value in params.items()}
    places = {key: operation.parameters[key].place for key in values}
    request = OpenApiRequest(query={k: v for k, v in values.items() if places[k] == "query"},
                             body={k: v for k, v in values.items() if places[k] == "body"})
    answer = Client(config(port)).call_api(api, request, RuntimeOptions())
    body: dict[str, Any] = answer["body"]
    return body


def same_fields(model_map: Any, sent: Any, where: str = "body") -> None:
    """Every key the simulator sent survives the generated model: a misspelt field would be dropped."""
    if isinstance(sent, dict):
        assert isinstance(model_map, dict), where
        missing = set(sent) - set(model_map)
        assert not missing, f"{where}: the SDK model has no field {sorted(missing)}"
        for key, value in sent.items():
            same_fields(model_map[key], value, f"{where}.{key}")
    elif isinstance(sent, list):
        assert isinstance(model_map, list) and len(model_map) == len(sent), where
        for index, (left, right) in enumerate(zip(model_map, sent, strict=True)):
            same_fields(left, right, f"{where}[{index}]")
    else:
        assert model_map == sent, f"{where}: {model_map!r} != {sent!r}"


def dataworks(port: int) -> Any:
    from alibabacloud_dataworks_public20240518.client import Client

    return Client(config(port))


def test_dataworks_read_operations_conform(simulator: Simulator) -> None:
    from alibabacloud_dataworks_public20240518 import models

    port, client = simulator.cloud_port, dataworks(simulator.cloud_port)
    cases = [
        (client.get_project(models.GetProjectRequest(id=int(WORKSPACE_ID))), "GetProject", {"Id": WORKSPACE_ID}),
        (client.get_resource_group(models.GetResourceGroupRequest(id=RESOURCE_GROUP_ID)), "GetResourceGroup",
         {"Id": RESOURCE_GROUP_ID}),
        (client.list_resource_group_associate_projects(
            models.ListResourceGroupAssociateProjectsRequest(resource_group_id=RESOURCE_GROUP_ID)),
         "ListResourceGroupAssociateProjects", {"ResourceGroupId": RESOURCE_GROUP_ID}),
        (client.list_networks(models.ListNetworksRequest(resource_group_id=RESOURCE_GROUP_ID)), "ListNetworks",
         {"ResourceGroupId": RESOURCE_GROUP_ID}),
        (client.list_routes(models.ListRoutesRequest(resource_group_id=RESOURCE_GROUP_ID)), "ListRoutes",
         {"ResourceGroupId": RESOURCE_GROUP_ID}),
        (client.get_node(models.GetNodeRequest(id="700001234567", project_id=int(WORKSPACE_ID))), "GetNode",
         {"Id": "700001234567", "ProjectId": WORKSPACE_ID}),
        (client.list_nodes(models.ListNodesRequest(project_id=int(WORKSPACE_ID))), "ListNodes",
         {"ProjectId": WORKSPACE_ID}),
    ]
    for response, action, params in cases:
        sent = raw(port, "dataworks", action, **params)
        body = response.body.to_map()
        sent.pop("RequestId"), body.pop("RequestId")
        same_fields(body, sent, action)
    assert simulator.deviations() == [] and simulator.refusals() == [], "the SDK and raw() keep the contract"
    project = cases[0][0].body.project
    assert (project.id, project.name, project.status) == (int(WORKSPACE_ID), "llm_demo", "Available")
    group = cases[1][0].body.resource_group
    assert (group.resource_group_type, group.status, group.default_vpc_id) == ("CommonV2", "Normal", FIRST_VPC)
    assert cases[2][0].body.project_id_list == [int(WORKSPACE_ID)]
    nodes = cases[6][0].body.paging_info.nodes
    assert [(n.id, n.runtime_resource.resource_group_id, n.trigger.type) for n in nodes] == [
        ("700001234567", RESOURCE_GROUP_ID, "Scheduler"), ("700001234568", RESOURCE_GROUP_ID, "Scheduler")]
    spec = json.loads(cases[5][0].body.node.spec)["spec"]["nodes"][0]
    assert spec["runtimeResource"]["resourceGroup"] == RESOURCE_GROUP_ID and spec["trigger"]["type"] == "Scheduler"
    routes = cases[4][0].body.paging_info.route_list
    assert {r.network_id for r in routes} == {1001, 1002} and routes[0].destination_cidr == "10.0.0.0/8"


def test_list_networks_pages_newest_first_so_the_checker_must_sort(simulator: Simulator) -> None:
    from alibabacloud_dataworks_public20240518 import models

    client = dataworks(simulator.cloud_port)
    seen = []
    for number in (1, 2, 3):
        info = client.list_networks(models.ListNetworksRequest(resource_group_id=RESOURCE_GROUP_ID, page_size=1,
                                                               page_number=number)).body.paging_info
        assert (info.total_count, info.page_number, info.page_size) == (2, number, 1)
        seen += [(n.vpc_id, n.create_time, n.status) for n in info.network_list]
    assert [vpc for vpc, _, _ in seen] == [SECOND_VPC, FIRST_VPC]
    assert seen[0][1] > seen[1][1] and {status for _, _, status in seen} == {"Running"}


def test_ad_hoc_workflow_operations_conform(simulator: Simulator) -> None:
    from alibabacloud_dataworks_public20240518 import models

    port, client = simulator.cloud_port, dataworks(simulator.cloud_port)
    bizdate = int(time.time() * 1000)
    task = models.ExecuteAdhocWorkflowInstanceRequestTasks(
        client_unique_code="preflight-1", name="conformance", owner="preflight-ci", type="DIDE_SHELL", timeout=30,
        script=models.ExecuteAdhocWorkflowInstanceRequestTasksScript(content="echo conformance-$((6*7))"),
        runtime_resource=models.ExecuteAdhocWorkflowInstanceRequestTasksRuntimeResource(
            resource_group_id=RESOURCE_GROUP_ID))
    started = client.execute_adhoc_workflow_instance(models.ExecuteAdhocWorkflowInstanceRequest(
        project_id=int(WORKSPACE_ID), name="conformance", owner="preflight-ci", env_type="Prod",
        biz_date=bizdate, tasks=[task])).body
    assert started.request_id and isinstance(started.workflow_instance_id, int)
    workflow_id = started.workflow_instance_id
    deadline = time.monotonic() + 20
    while client.get_workflow_instance(models.GetWorkflowInstanceRequest(id=workflow_id)).body.workflow_instance \
            .status not in ("Success", "Failure"):
        assert time.monotonic() < deadline, "the workflow instance never finished"
        time.sleep(0.05)
    listed = client.list_task_instances(models.ListTaskInstancesRequest(
        project_id=int(WORKSPACE_ID), bizdate=bizdate, workflow_instance_id=workflow_id))
    task_id = listed.body.paging_info.task_instances[0].id
    cases = [
        (client.get_workflow_instance(models.GetWorkflowInstanceRequest(id=workflow_id)), "GetWorkflowInstance",
         {"Id": workflow_id}),
        (listed, "ListTaskInstances", {"ProjectId": WORKSPACE_ID, "Bizdate": bizdate,
                                       "WorkflowInstanceId": workflow_id}),
        (client.get_task_instance(models.GetTaskInstanceRequest(id=task_id)), "GetTaskInstance", {"Id": task_id}),
        (client.get_task_instance_log(models.GetTaskInstanceLogRequest(id=task_id, run_number=1)),
         "GetTaskInstanceLog", {"Id": task_id, "RunNumber": 1}),
    ]
    for response, action, params in cases:
        sent = raw(port, "dataworks", action, **params)
        body = response.body.to_map()
        sent.pop("RequestId"), body.pop("RequestId")
        same_fields(body, sent, action)
    assert simulator.deviations() == [] and simulator.refusals() == [], "the SDK and raw() keep the contract"
    assert cases[0][0].body.workflow_instance.status == "Success"
    instance = cases[2][0].body.task_instance
    assert (instance.status, instance.workflow_instance_id, instance.runtime_resource.resource_group_id) == (
        "Success", workflow_id, RESOURCE_GROUP_ID)
    assert "conformance-42" in cases[3][0].body.task_instance_log


def test_network_operations_conform(simulator: Simulator) -> None:
    from alibabacloud_privatelink20200415 import models as pl
    from alibabacloud_privatelink20200415.client import Client as PrivateLink
    from alibabacloud_pvtz20180101 import models as pvtz
    from alibabacloud_pvtz20180101.client import Client as Pvtz
    from alibabacloud_vpc20160428 import models as vpc
    from alibabacloud_vpc20160428.client import Client as Vpc

    port = simulator.cloud_port
    model = simulator.world.models[0]
    zones = Pvtz(config(port)).describe_zones(pvtz.DescribeZonesRequest(query_vpc_id=FIRST_VPC,
                                                                        keyword=model.service_id))
    zone_id = zones.body.zones.zone[0].zone_id
    endpoints = PrivateLink(config(port)).list_vpc_endpoints(pl.ListVpcEndpointsRequest(region_id=REGION,
                                                                                         vpc_id=FIRST_VPC))
    endpoint_id = endpoints.body.endpoints[0].endpoint_id
    cases = [
        (zones, "pvtz", "DescribeZones", {"QueryVpcId": FIRST_VPC, "Keyword": model.service_id}),
        (Pvtz(config(port)).describe_zone_info(pvtz.DescribeZoneInfoRequest(zone_id=zone_id)), "pvtz",
         "DescribeZoneInfo", {"ZoneId": zone_id}),
        (Pvtz(config(port)).describe_zone_records(pvtz.DescribeZoneRecordsRequest(zone_id=zone_id)), "pvtz",
         "DescribeZoneRecords", {"ZoneId": zone_id}),
        (endpoints, "privatelink", "ListVpcEndpoints", {"RegionId": REGION, "VpcId": FIRST_VPC}),
        (PrivateLink(config(port)).list_vpc_endpoint_zones(pl.ListVpcEndpointZonesRequest(
            region_id=REGION, endpoint_id=endpoint_id)), "privatelink", "ListVpcEndpointZones",
         {"RegionId": REGION, "EndpointId": endpoint_id}),
        (Vpc(config(port)).describe_vswitch_attributes(vpc.DescribeVSwitchAttributesRequest(
            region_id=REGION, v_switch_id="vsw-2ze0first000000001")), "vpc", "DescribeVSwitchAttributes",
         {"RegionId": REGION, "VSwitchId": "vsw-2ze0first000000001"}),
    ]
    for response, product, action, params in cases:
        sent = raw(port, product, action, **params)
        body = response.body.to_map()
        sent.pop("RequestId"), body.pop("RequestId")
        same_fields(body, sent, action)
    assert simulator.deviations() == [] and simulator.refusals() == [], "the SDK and raw() keep the contract"
    assert [z.zone_name for z in zones.body.zones.zone] == [model.host]
    assert [v.vpc_id for v in cases[1][0].body.bind_vpcs.vpc] == [FIRST_VPC]
    record = cases[2][0].body.records.record[0]
    assert (record.rr, record.type, record.status) == ("@", "A", "ENABLE") and record.value.startswith("10.")
    endpoint = endpoints.body.endpoints[0]
    assert (endpoint.endpoint_status, endpoint.connection_status, endpoint.vpc_id) == ("Active", "Connected",
                                                                                        FIRST_VPC)
    assert endpoint.service_name.endswith(model.service_id)
    assert cases[4][0].body.zones[0].eni_ip.startswith("10.")
    assert (cases[5][0].body.vpc_id, cases[5][0].body.status) == (FIRST_VPC, "Available")


def test_deployed_tasks_and_drafts_conform() -> None:
    from alibabacloud_dataworks_public20240518 import models
    from alibabacloud_tea_openapi.exceptions import ClientException

    from preflight.simulator.scenarios import OTHER_GROUP

    with Simulator(get_scenario("node-deployed-elsewhere")) as running:
        port, client = running.cloud_port, dataworks(running.cloud_port)
        draft = client.get_node(models.GetNodeRequest(id="700001234567", project_id=int(WORKSPACE_ID))).body.node
        spec = json.loads(draft.spec)["spec"]["nodes"][0]
        assert spec["runtimeResource"]["resourceGroup"] == RESOURCE_GROUP_ID and draft.task_id == 700001234568
        response = client.get_task(models.GetTaskRequest(id=draft.task_id, project_env="Prod"))
        sent = raw(port, "dataworks", "GetTask", Id=draft.task_id, ProjectEnv="Prod")
        body = response.body.to_map()
        sent.pop("RequestId"), body.pop("RequestId")
        same_fields(body, sent, "GetTask")
        task = response.body.task
        assert (task.runtime_resource.resource_group_id, task.trigger.type, task.trigger.cron) == (
            OTHER_GROUP, "Scheduler", "00 00 02 * * ?")
        development = client.get_task(models.GetTaskRequest(id=draft.task_id, project_env="Dev")).body.task
        assert development.runtime_resource.resource_group_id == RESOURCE_GROUP_ID
        assert running.deviations() == [] and running.refusals() == []
    with Simulator(get_scenario("node-not-deployed")) as running:
        client = dataworks(running.cloud_port)
        draft = client.get_node(models.GetNodeRequest(id="700001234567", project_id=int(WORKSPACE_ID))).body.node
        assert draft.task_id is None, "a node never deployed has no scheduling task"
        with pytest.raises(ClientException) as caught:
            client.get_task(models.GetTaskRequest(id=700001234568))
        assert (caught.value.code, caught.value.status_code) == ("Invalid.Task.NotFound", 400)
        listed = client.list_nodes(models.ListNodesRequest(project_id=int(WORKSPACE_ID))).body.paging_info.nodes
        assert [n.task_id for n in listed] == [None, 700001234569]


def test_list_networks_rows_carry_their_status_and_the_default_vpc_is_the_first_live_one() -> None:
    from alibabacloud_dataworks_public20240518 import models

    from preflight.simulator.scenarios import OLD_VPC

    with Simulator(get_scenario("binding-deleted-first")) as running:
        client = dataworks(running.cloud_port)
        rows = client.list_networks(models.ListNetworksRequest(resource_group_id=RESOURCE_GROUP_ID, page_size=10)) \
            .body.paging_info.network_list
        earliest = min(rows, key=lambda row: row.create_time)
        assert (earliest.vpc_id, earliest.status) == (OLD_VPC, "Deleted")
        assert {row.status for row in rows if row.vpc_id != OLD_VPC} == {"Running"}
        group = client.get_resource_group(models.GetResourceGroupRequest(id=RESOURCE_GROUP_ID)).body.resource_group
        assert group.default_vpc_id == FIRST_VPC
        routes = client.list_routes(models.ListRoutesRequest(resource_group_id=RESOURCE_GROUP_ID)).body.paging_info
        assert {route.network_id for route in routes.route_list} == {1001, 1002}, "a deleted binding routes nothing"


def test_zone_records_page_as_the_pvtz_model_says() -> None:
    from alibabacloud_pvtz20180101 import models as pvtz
    from alibabacloud_pvtz20180101.client import Client as Pvtz

    from preflight.simulator.openapi import eni_ip

    with Simulator(get_scenario("zone-records-paged")) as running:
        client = Pvtz(config(running.cloud_port))
        zone_id = f"zone-{running.world.models[0].service_id}"
        first = client.describe_zone_records(pvtz.DescribeZoneRecordsRequest(zone_id=zone_id)).body
        assert (len(first.records.record), first.total_items, first.total_pages, first.page_number,
                first.page_size) == (20, 25, 2, 1, 20)
        assert "@" not in {record.rr for record in first.records.record}
        second = client.describe_zone_records(pvtz.DescribeZoneRecordsRequest(zone_id=zone_id, page_number=2)).body
        assert [(r.rr, r.value) for r in second.records.record][-1] == ("@", eni_ip(0, 0))
        assert len(second.records.record) == 5 and second.page_number == 2
        whole = client.describe_zone_records(pvtz.DescribeZoneRecordsRequest(zone_id=zone_id, page_size=500)).body
        assert (len(whole.records.record), whole.page_size, whole.total_pages) == (25, 100, 1), "100 at most"
        sent = raw(running.cloud_port, "pvtz", "DescribeZoneRecords", ZoneId=zone_id, PageNumber=2)
        assert sent["Records"]["Record"][-1]["Rr"] == "@"
        assert running.deviations() == [] and running.refusals() == []


def test_sts_get_caller_identity_conforms(simulator: Simulator) -> None:
    from alibabacloud_sts20150401.client import Client as Sts

    from preflight.simulator.scenarios import ACCOUNT_ID, CALLER_USER_ID

    response = Sts(config(simulator.cloud_port)).get_caller_identity()
    sent = raw(simulator.cloud_port, "sts", "GetCallerIdentity")
    body = response.body.to_map()
    sent.pop("RequestId"), body.pop("RequestId")
    same_fields(body, sent, "GetCallerIdentity")
    identity = response.body
    assert (identity.account_id, identity.user_id, identity.principal_id, identity.identity_type) == (
        ACCOUNT_ID, CALLER_USER_ID, CALLER_USER_ID, "RAMUser")
    assert identity.arn == f"acs:ram::{ACCOUNT_ID}:user/preflight-ci"
