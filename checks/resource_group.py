"""Resource group checks: the group is Serverless and Normal, attached to the workspace, and runs the collector."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.answers import associated_projects, get_resource_group
from checks.cloudfail import outcome_of
from preflight.engine.model import Outcome
from preflight.engine.registry import check
from preflight.errors import CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

DOCS = "https://www.alibabacloud.com/help/en/dataworks/user-guide/serverless-resource-groups"
# What submitting and following the collector's task needs, named in the fixes.
RAM_ACTIONS = ("dataworks:ExecuteAdhocWorkflowInstance", "dataworks:GetWorkflowInstance",
               "dataworks:ListTaskInstances", "dataworks:GetTaskInstance", "dataworks:GetTaskInstanceLog")


@check("resource_group.ready", "Resource group is Serverless and Normal", depends_on=("cloud.credentials",),
       plane="control", scope="target", tags=("control", "resource_group"), timeout_s=30, docs=DOCS,
       proves="GetResourceGroup finds the group, its type is CommonV2 (Serverless) and its status Normal.",
       how="GetResourceGroup with the resource group id; asked once per group per run.",
       failure_means="Model services run only on Serverless resource groups; a stopped or frozen group runs nothing.",
       fix="Use a Serverless resource group (DataWorks > Resource Groups), and start or renew it.")
async def resource_group_ready(context: CheckContext) -> Outcome:
    group = context.target.resource_group
    if group is None:
        return Outcome.skipped("no resource_group configured for this target")
    try:
        answer = await get_resource_group(context)
    except CloudError as error:
        return outcome_of(error, f"GetResourceGroup for {group}")
    info = answer.get("ResourceGroup") or {}
    evidence = {key: info.get(key) for key in ("Id", "Name", "ResourceGroupType", "Status", "DefaultVpcId",
                                               "DefaultVswitchId")}
    if info.get("ResourceGroupType") != "CommonV2":
        return Outcome.failed(f"{group} is a {info.get('ResourceGroupType')} group, not Serverless (CommonV2)",
                              "Model services are deployed on and called from Serverless resource groups: create one "
                              "in DataWorks > Resource Groups and use it for the nodes.", **evidence)
    if info.get("Status") != "Normal":
        return Outcome.failed(f"{group} is {info.get('Status')}, not Normal",
                              "Start or renew the resource group in DataWorks > Resource Groups.", **evidence)
    return Outcome.passed(f"{group} is Serverless (CommonV2) and Normal", **evidence)


@check("resource_group.attached", "Resource group is attached to the workspace",
       depends_on=("workspace.exists", "resource_group.ready"), plane="control", scope="target",
       tags=("control", "resource_group"), timeout_s=30, docs=DOCS,
       proves="The workspace is among the workspaces the resource group is associated with.",
       how="ListResourceGroupAssociateProjects for the group.",
       failure_means="Nodes of the workspace cannot run on the group.",
       fix="DataWorks > Resource Groups > the group > Associate Workspace, and choose the workspace.")
async def resource_group_attached(context: CheckContext) -> Outcome:
    target = context.target
    if target.workspace is None or target.resource_group is None:
        return Outcome.skipped("needs both workspace and resource_group")
    try:
        answer = await associated_projects(context)
    except CloudError as error:
        return outcome_of(error, f"ListResourceGroupAssociateProjects for {target.resource_group}")
    attached = [str(project) for project in answer.get("ProjectIdList") or []]
    evidence = {"resource_group": target.resource_group, "workspace": target.workspace, "attached": attached}
    if target.workspace not in attached:
        return Outcome.failed(f"{target.resource_group} is not associated with workspace {target.workspace}",
                              "DataWorks console > Resource Groups > the group > Associate Workspace: add workspace "
                              f"{target.workspace}.", **evidence)
    return Outcome.passed(f"associated with workspace {target.workspace}", **evidence)


@check("resource_group.probe", "The collector ran inside the resource group", depends_on=("resource_group.attached",),
       plane="network", scope="target", tags=("innetwork", "network"), timeout_s=10,
       docs="https://www.alibabacloud.com/help/en/dataworks/developer-reference/api-dataworks-public-2024-05-18-"
            "executeadhocworkflowinstance",
       proves="With --from resource-group: an ad hoc Shell task on the group ran the stdlib collector and its "
              "observations were read back from the task log.",
       how="STS GetCallerIdentity for the task's Owner (unless in_network.owner is set), "
           "ExecuteAdhocWorkflowInstance with BizDate yesterday at 00:00 in the region's time zone, then "
           "GetWorkflowInstance / ListTaskInstances / GetTaskInstance with "
           "backoff, then GetTaskInstanceLog and the marked PREFLIGHT-OBSERVATIONS line.",
       failure_means="The task could not be submitted (RAM), did not get resources, failed (no python3?), timed "
                     "out, or its log lost the marked line.",
       fix="Grant " + ", ".join(RAM_ACTIONS) + "; or paste `preflight probe-script` into a Shell node and "
           "`preflight ingest` its log.")
async def probe(context: CheckContext) -> Outcome:
    record: dict[str, Any] = dict((context.observations or {}).get("probe") or {})
    if not record:
        return Outcome.skipped("runs with --from resource-group (or preflight ingest); this run observed locally")
    context.used_origin = context.observation_origin
    status = record.get("status")
    evidence = {key: value for key, value in record.items() if key != "log_tail"}
    if record.get("log_tail"):
        evidence["log_tail"] = record["log_tail"]
    if status == "Success":
        sent = "with the key" if record.get("key_sent") else "without the key (--send-key not given)"
        where = record.get("task_instance_id") or record.get("source")
        # What was submitted, as a real account checks it: the task's owner and its business date.
        submitted = (f", owner {record['owner']}, business date {record.get('biz_date')} ({record.get('biz_date_ms')})"
                     if record.get("owner") else "")
        return Outcome.passed(f"observed from {context.observation_origin} {sent} (task {where}{submitted}, Python "
                              f"{record.get('python')}, {record.get('seconds', 0)} s)", **evidence)
    if status == "NotSubmitted":
        owner = (f" The task was submitted as owner {record['owner']} ({record.get('owner_source')}); set "
                 "in_network.owner if DataWorks refuses that id." if record.get("owner") else "")
        return Outcome.failed(f"the collector was not submitted: {record.get('problem')}",
                              "Grant the RAM actions " + ", ".join(RAM_ACTIONS) + " (AliyunDataWorksFullAccess), or "
                              "paste `preflight probe-script --target NAME` into a Shell node by hand and run "
                              f"`preflight ingest` on its log.{owner}", **evidence)
    if status == "Unfollowed":
        return Outcome.failed(f"the task was submitted but could not be followed: {record.get('problem')}",
                              "Grant the RAM actions " + ", ".join(RAM_ACTIONS) + "; the instance "
                              f"{record.get('workflow_instance_id')} may still run: look at it in Operation Center.",
                              **evidence)
    if status == "Timeout":
        last = (record.get("statuses") or ["?"])[-1]
        return Outcome.failed(f"the task did not finish in time (last status {last})",
                              "The group may be out of resources; raise in_network.timeout_s or --timeout, or look "
                              "at the instance in Operation Center.", **evidence)
    if status == "LogUnreadable":
        from preflight.engine.model import Status

        return Outcome(Status.ERROR, f"the task ran but its log cannot be read: {record.get('problem')}", evidence,
                       "Download the full log from Operation Center and run `preflight ingest LOGFILE`.")
    return Outcome.failed(f"the task ended {status}; last log lines in the evidence",
                          "Look at the log tail: a missing python3 on the group, or a Shell task type other than "
                          "DIDE_SHELL (in_network.task_type).", **evidence)


CHECKS = (resource_group_ready, resource_group_attached, probe)
