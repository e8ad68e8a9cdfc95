"""The OpenAPI products the tool calls and every action of theirs it calls, with the generated client's method."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    """One OpenAPI product and the package of its generated client; `optional` ones are in the `network` extra."""

    name: str
    package: str
    optional: bool = False


PRODUCTS = {
    "dataworks": Product("dataworks", "alibabacloud_dataworks_public20240518"),
    "pvtz": Product("pvtz", "alibabacloud_pvtz20180101", optional=True),
    "privatelink": Product("privatelink", "alibabacloud_privatelink20200415", optional=True),
    "vpc": Product("vpc", "alibabacloud_vpc20160428", optional=True),
    # Who the credentials belong to: the in-network task's Owner when the config names none.
    "sts": Product("sts", "alibabacloud_sts20150401"),
}
# An action's request model is `<Action>Request` and its RAM action `<product>:<Action>`; the client method carries
# the HTTP method and where each parameter goes. preflight.config.actions holds the same table for the config's
# rate-limit keys: importing it here would load the whole config into `preflight list`, which needs none of it.
ACTIONS: dict[tuple[str, str], str] = {
    ("dataworks", "GetProject"): "get_project",
    ("dataworks", "GetResourceGroup"): "get_resource_group",
    ("dataworks", "ListResourceGroups"): "list_resource_groups",  # preflight init only
    ("dataworks", "ListResourceGroupAssociateProjects"): "list_resource_group_associate_projects",
    ("dataworks", "ListNetworks"): "list_networks",
    ("dataworks", "GetNode"): "get_node",
    ("dataworks", "GetTask"): "get_task",
    ("dataworks", "ExecuteAdhocWorkflowInstance"): "execute_adhoc_workflow_instance",
    ("dataworks", "GetWorkflowInstance"): "get_workflow_instance",
    ("dataworks", "ListTaskInstances"): "list_task_instances",
    ("dataworks", "GetTaskInstance"): "get_task_instance",
    ("dataworks", "GetTaskInstanceLog"): "get_task_instance_log",
    ("pvtz", "DescribeZones"): "describe_zones",
    ("pvtz", "DescribeZoneVpcTree"): "describe_zone_vpc_tree",
    ("pvtz", "DescribeZoneRecords"): "describe_zone_records",
    ("privatelink", "ListVpcEndpoints"): "list_vpc_endpoints",
    ("privatelink", "ListVpcEndpointZones"): "list_vpc_endpoint_zones",
    ("vpc", "DescribeVSwitchAttributes"): "describe_vswitch_attributes",
    ("sts", "GetCallerIdentity"): "get_caller_identity",  # no request model: the action takes no parameters
}
# Read-only policies do not grant these; everything else the tool calls is a Get/List/Describe.
WRITE_ACTIONS = frozenset({"dataworks:ExecuteAdhocWorkflowInstance"})

__all__ = ["ACTIONS", "PRODUCTS", "WRITE_ACTIONS", "Product"]
