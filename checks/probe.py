"""The in-network probe: the collector ran in the resource group and its observations came back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from preflight.engine.model import Outcome
from preflight.engine.registry import check

if TYPE_CHECKING:
    from preflight.config.context import CheckContext

RAM_ACTIONS = ("dataworks:ExecuteAdhocWorkflowInstance", "dataworks:GetWorkflowInstance",
               "dataworks:ListTaskInstances", "dataworks:GetTaskInstance", "dataworks:GetTaskInstanceLog")


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


CHECKS = (probe,)
