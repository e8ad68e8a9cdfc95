"""Scheduling check: the nodes that call the model run on the checked resource group, on a schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.cloudfail import outcome_of
from preflight.cloud import call, project_id
from preflight.errors import CloudError
from preflight.model import Outcome
from preflight.registry import check

if TYPE_CHECKING:
    from preflight.context import Context


async def get_node(context: Context, node: str) -> dict[str, Any]:
    assert context.target.workspace is not None
    return await call(context, "dataworks", "GetNode", id=node,
                      project_id=project_id(context.target.workspace, "dataworks:GetNode"))


def node_facts(answer: dict[str, Any]) -> dict[str, Any]:
    """Resource group and trigger of a node, read from its FlowSpec."""
    import json  # here: `preflight list` imports this module and needs no json

    node = answer.get("Node") or {}
    try:
        spec = json.loads(node.get("Spec") or "{}")
    except ValueError:
        spec = {}
    nodes = (spec.get("spec") or {}).get("nodes") or [{}]
    first = nodes[0] if isinstance(nodes[0], dict) else {}
    trigger = first.get("trigger") or {}
    return {"id": str(node.get("Id")), "name": node.get("Name"),
            "resource_group": (first.get("runtimeResource") or {}).get("resourceGroup"),
            "trigger": trigger.get("type"), "cron": trigger.get("cron")}


@check("schedule.node_resource_group", "Scheduled nodes run on this resource group",
       depends_on=("resource_group.ready", "workspace.exists"), plane="control", scope="target",
       tags=("control", "schedule", "optional"), timeout_s=30,
       docs="https://www.alibabacloud.com/help/en/dataworks/user-guide/configure-scheduling-resource-groups",
       proves="Each node listed in `nodes` runs on the checked resource group and has a schedule.",
       how="GetNode for each node id; reads runtimeResource and trigger from its FlowSpec.",
       failure_means="A node on another group calls the model from a network that may not reach it.",
       fix="Node > Scheduling > Resource Group: choose the checked group, then publish the node.")
async def node_resource_group(context: Context) -> Outcome:
    target = context.target
    if not target.nodes:
        return Outcome.skipped("no nodes listed for this target (nodes: [...])")
    import asyncio

    try:
        answers = await asyncio.gather(*(get_node(context, node) for node in target.nodes))
    except CloudError as error:
        return outcome_of(error, "GetNode")
    facts = [node_facts(answer) for answer in answers]
    elsewhere = [f for f in facts if f["resource_group"] != target.resource_group]
    unscheduled = [f for f in facts if f["trigger"] != "Scheduler"]
    evidence = {"resource_group": target.resource_group, "nodes": facts}
    if elsewhere:
        names = ", ".join(f"{f['name']} ({f['id']}) on {f['resource_group']}" for f in elsewhere)
        return Outcome.failed(f"{len(elsewhere)} node(s) run on another resource group: {names}",
                              f"Open each node > Scheduling > Resource Group, choose {target.resource_group}, and "
                              "publish the node (scheduled runs use the published version).", **evidence)
    if unscheduled:
        names = ", ".join(f"{f['name']} ({f['id']})" for f in unscheduled)
        return Outcome.failed(f"node(s) without a schedule: {names}", "Set a schedule and publish the node.",
                              **evidence)
    return Outcome.passed(f"{len(facts)} node(s) run on {target.resource_group} on a schedule", **evidence)


CHECKS = (node_resource_group,)
