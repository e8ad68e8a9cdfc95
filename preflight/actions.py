"""Every Alibaba Cloud API action the tool calls, with the generated client's method for it, as plain data.

A foundation like preflight.errors: the config checks `cloud.rate_limits` keys against it and the cloud layer calls
through it, so it imports nothing and sits below both.
"""

from __future__ import annotations

# The request model of an action is `<Action>Request` and its RAM action `<product>:<Action>`; the client method
# carries the HTTP method and where each parameter goes.
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
# The keys `cloud.rate_limits` takes: every action's `product:Action`, and `default` for the others.
RATE_LIMIT_KEYS = ("default", *sorted(f"{product}:{action}" for product, action in ACTIONS))

__all__ = ["ACTIONS", "RATE_LIMIT_KEYS"]
