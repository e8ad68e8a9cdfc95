"""Scheduling check: the nodes that call the model are deployed on the checked resource group, on a schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.answers import deployed
from checks.cloudfail import outcome_of
from preflight.engine.model import Outcome
from preflight.engine.registry import check
from preflight.errors import CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

RAM_ACTIONS = ("dataworks:GetNode", "dataworks:GetTask")


def _named(facts: dict[str, Any]) -> str:
    return f"{facts['name']} ({facts['id']})"


@check("schedule.node_resource_group", "Scheduled nodes are deployed on this resource group",
       depends_on=("resource_group.ready", "workspace.exists"), plane="control", scope="target",
       tags=("control", "schedule", "optional"), timeout_s=30,
       docs="https://www.alibabacloud.com/help/en/dataworks/user-guide/configure-scheduling-resource-groups",
       proves="Each node listed in `nodes` is deployed, and its deployed task runs on the checked resource group "
              "on a schedule.",
       how="GetNode for each node id (the Data Studio draft and, once deployed, its TaskId), then GetTask in the "
           "production environment: the deployed task's RuntimeResource and Trigger. Needs "
           + " and ".join(RAM_ACTIONS) + ".",
       failure_means="A node never deployed has no scheduled runs; a deployed task on another group calls the model "
                     "from a network that may not reach it.",
       fix="Node > Scheduling > Resource Group: choose the checked group, then deploy (publish) the node.")
async def node_resource_group(context: CheckContext) -> Outcome:
    target = context.target
    if not target.nodes:
        return Outcome.skipped("no nodes listed for this target (nodes: [...])")
    import asyncio

    try:
        facts = list(await asyncio.gather(*(deployed(context, node) for node in target.nodes)))
    except CloudError as error:
        return outcome_of(error, error.action.split(":")[-1] or "GetNode")
    group = target.resource_group
    for node in facts:
        if node["deployed"] and node["draft_resource_group"] != node["resource_group"]:
            node["note"] = (f"the draft says {node['draft_resource_group']}, the deployed task runs on "
                            f"{node['resource_group']}")
    evidence = {"resource_group": group, "nodes": facts}
    undeployed = [f for f in facts if not f["deployed"]]
    elsewhere = [f for f in facts if f["deployed"] and f["resource_group"] != group]
    unscheduled = [f for f in facts if f["deployed"] and f["trigger"] != "Scheduler"]
    if undeployed:
        names = ", ".join(f"{_named(f)} (the draft says {f['draft_resource_group']}, trigger {f['draft_trigger']})"
                          for f in undeployed)
        return Outcome.failed(f"{len(undeployed)} node(s) not deployed: scheduled runs will not happen until the "
                              f"node is deployed: {names}",
                              f"Open each node in Data Studio, check Scheduling > Resource Group is {group}, then "
                              "deploy it (Save, Submit, Deploy).", **evidence)
    if elsewhere:
        names = ", ".join(f"{_named(f)} is deployed on {f['resource_group']}, not {group}" for f in elsewhere)
        return Outcome.failed(f"{len(elsewhere)} deployed task(s) run on another resource group: {names}",
                              f"Open each node > Scheduling > Resource Group, choose {group}, and deploy the node "
                              "again (scheduled runs use the deployed version).", **evidence)
    if unscheduled:
        names = ", ".join(f"{_named(f)} (trigger {f['trigger']})" for f in unscheduled)
        return Outcome.failed(f"deployed task(s) without a schedule: {names}",
                              "Set a schedule (Scheduling > Time Property) and deploy the node again.", **evidence)
    drafts = [f for f in facts if f.get("note")]
    more = f"; {len(drafts)} draft(s) changed since: see the evidence" if drafts else ""
    return Outcome.passed(f"{len(facts)} deployed node(s) run on {group} on a schedule{more}", **evidence)


CHECKS = (node_resource_group,)
