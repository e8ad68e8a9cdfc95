"""The simulated DataWorks actions: the workspace, resource groups and their networks, nodes, tasks and ad hoc runs."""

from __future__ import annotations

import json
from typing import Any

from preflight.simulator.actions import ApiError, WorldActions, paginate
from preflight.simulator.workflow import TaskRun, WorkflowRunner

# The task types whose Script.Content the simulator runs with /bin/sh.
SHELL_TASK_TYPES = frozenset({"DIDE_SHELL"})


class DataWorksActions(WorldActions):
    """DataWorks' answers for the world; ad hoc runs go to its workflow runner."""

    workflows: WorkflowRunner

    def _group(self, group_id: str) -> None:
        if group_id not in self.world.resource_group_ids:
            raise ApiError(400, "Invalid.ResourceGroup.NotFound", f"The resource group {group_id} does not exist.")

    def get_project(self, params: dict[str, str]) -> dict[str, Any]:
        world = self.world
        if not world.workspace_exists or params.get("Id") != world.workspace_id:
            raise ApiError(400, "Invalid.Tenant.ProjectNotExists", f"The workspace {params.get('Id')} does not exist.")
        return {"Project": {"Id": int(world.workspace_id), "Name": world.workspace_name,
                            "DisplayName": world.workspace_name, "Status": world.workspace_status,
                            "Description": "simulated workspace", "DevEnvironmentEnabled": True}}

    def get_resource_group(self, params: dict[str, str]) -> dict[str, Any]:
        group = params.get("Id", "")
        self._group(group)
        world = self.world
        first = world.live_bindings[0] if world.live_bindings else None
        return {"ResourceGroup": {"Id": group, "Name": group.split("_")[-1], "ResourceGroupType":
                                  world.resource_group_type, "Status": world.resource_group_status,
                                  "PaymentType": "PostPaid", "Spec": {"Amount": 2, "Standard": "2CU"},
                                  "CreateTime": 1740787200000,
                                  "DefaultVpcId": first.vpc_id if first else None,
                                  "DefaultVswitchId": first.vswitch_id if first else None}}

    def list_resource_groups(self, params: dict[str, str]) -> dict[str, Any]:
        """The account's groups (ResourceGroupTypes, a JSON list, filters by type), one page."""
        world = self.world
        wanted = json.loads(params["ResourceGroupTypes"]) if params.get("ResourceGroupTypes") else None
        groups = [{"Id": group, "Name": group.split("_")[-1], "ResourceGroupType": world.resource_group_type,
                   "Status": world.resource_group_status, "PaymentType": "PostPaid", "CreateTime": 1740787200000}
                  for group in world.resource_group_ids if wanted is None or world.resource_group_type in wanted]
        page, number, size = paginate(groups, params)
        return {"PagingInfo": {"ResourceGroupList": page, "PageNumber": number, "PageSize": size,
                               "TotalCount": len(groups)}, "Success": True}

    def list_associated_projects(self, params: dict[str, str]) -> Any:
        if "associate-not-json" in self.faults:
            return b"<html><body><h1>Service temporarily unavailable</h1></body></html>"
        self._group(params.get("ResourceGroupId", ""))
        return {"ProjectIdList": [int(p) for p in self.world.attached_workspaces], "Success": True}

    def list_networks(self, params: dict[str, str]) -> dict[str, Any]:
        self._group(params.get("ResourceGroupId", ""))
        newest_first = sorted(self.world.bindings, key=lambda b: b.create_time, reverse=True)
        networks = [{"Id": b.network_id, "VpcId": b.vpc_id, "VswitchId": b.vswitch_id,
                     "SecurityGroupId": b.security_group_id, "Status": b.status, "CreateTime":
                     _epoch_ms(b.create_time), "ResourceGroupId": params.get("ResourceGroupId")}
                    for b in newest_first]
        page, number, size = paginate(networks, params)
        return {"PagingInfo": {"NetworkList": page, "PageNumber": number, "PageSize": size,
                               "TotalCount": len(networks)}, "Success": True}

    def list_routes(self, params: dict[str, str]) -> dict[str, Any]:
        group = params.get("ResourceGroupId", "")
        self._group(group)
        wanted = params.get("NetworkId") or None
        # Each binding routes the private 10/8 range (where model endpoints' ENIs live) into its VPC.
        routes = [{"Id": 5000 + index, "NetworkId": b.network_id, "DestinationCidr": "10.0.0.0/8",
                   "ResourceGroupId": group, "ResourceId": b.vpc_id, "CreateTime": _epoch_ms(b.create_time)}
                  for index, b in enumerate(self.world.bindings)
                  if b.status != "Deleted" and (wanted is None or str(b.network_id) == wanted)]
        page, number, size = paginate(routes, params)
        return {"PagingInfo": {"RouteList": page, "PageNumber": number, "PageSize": size,
                               "TotalCount": len(routes)}, "Success": True}

    def _project(self, params: dict[str, str]) -> None:
        if not self.world.workspace_exists or params.get("ProjectId") != self.world.workspace_id:
            raise ApiError(400, "Invalid.Tenant.ProjectNotExists",
                           f"The workspace {params.get('ProjectId')} does not exist.")

    def get_node(self, params: dict[str, str]) -> dict[str, Any]:
        self._project(params)
        node = next((n for n in self.world.nodes if n.node_id == params.get("Id")), None)
        if node is None:
            raise ApiError(400, "Invalid.Node.NotFound", f"The node {params.get('Id')} does not exist.")
        spec = {"version": "1.1.0", "kind": "CycleWorkflow", "spec": {"nodes": [{
            "id": node.node_id, "name": node.name, "recurrence": "Normal", "timeout": 0,
            "script": {"language": "shell-script", "runtime": {"command": "DIDE_SHELL"}},
            "runtimeResource": {"resourceGroup": node.resource_group_id},
            "trigger": {"type": node.trigger_type, "cron": node.cron}}]}}
        # The draft: its TaskId names the scheduling task only once the node is deployed.
        return {"Node": {"Id": node.node_id, "Name": node.name, "ProjectId": int(self.world.workspace_id),
                         "Owner": self.world.caller_user_id, **({"TaskId": node.task_id} if node.deployed else {}),
                         "Spec": json.dumps(spec)}}

    def list_nodes(self, params: dict[str, str]) -> dict[str, Any]:
        self._project(params)
        nodes = [{"Id": n.node_id, "Name": n.name, "ProjectId": int(self.world.workspace_id),
                  "Owner": self.world.caller_user_id, "Recurrence": "Normal",
                  **({"TaskId": n.task_id} if n.deployed else {}),
                  "RuntimeResource": {"ResourceGroupId": n.resource_group_id},
                  "Trigger": {"Type": n.trigger_type, "Cron": n.cron},
                  "Script": {"Runtime": {"Command": "DIDE_SHELL"}}}
                 for n in self.world.nodes if params.get("Name", "") in n.name]
        page, number, size = paginate(nodes, params)
        return {"PagingInfo": {"Nodes": page, "PageNumber": number, "PageSize": size, "TotalCount": len(nodes)}}

    def get_task(self, params: dict[str, str]) -> dict[str, Any]:
        """The deployed task: production runs on the deployed resource group, development on the draft's."""
        wanted = _int(params.get("Id"))
        node = next((n for n in self.world.nodes if n.deployed and n.task_id == wanted), None)
        if node is None:
            raise ApiError(400, "Invalid.Task.NotFound", f"The task {params.get('Id')} does not exist.")
        env = params.get("ProjectEnv") or "Prod"
        group = node.runs_on if env == "Prod" else node.resource_group_id
        return {"Task": {"Id": node.task_id, "Name": node.name, "ProjectId": int(self.world.workspace_id),
                         "ProjectEnv": env, "Owner": self.world.caller_user_id, "Type": "DIDE_SHELL",
                         "InstanceMode": "T+1", "Timeout": 3600, "RerunMode": "Allowed",
                         "RuntimeResource": {"ResourceGroupId": group, "Cu": "0.25"},
                         "Trigger": {"Type": node.trigger_type, "Cron": node.cron, "Recurrence": "Normal",
                                     "StartTime": "1970-01-01 00:00:00", "EndTime": "9999-01-01 00:00:00"}}}

    def execute_adhoc(self, params: dict[str, str]) -> dict[str, Any]:
        self._project(params)
        try:
            tasks = json.loads(params.get("Tasks") or "[]")
            task = tasks[0]
            script = task["Script"]["Content"]
            group = task["RuntimeResource"]["ResourceGroupId"]
            timeout_s = int(task.get("Timeout") or 600)
            if not isinstance(script, str) or not isinstance(group, str) or len(tasks) != 1:
                raise TypeError("one task with a string script and group")
        except (ValueError, LookupError, TypeError):
            raise ApiError(400, "InvalidParameter", "Tasks must hold one task with Script.Content, "
                           "RuntimeResource.ResourceGroupId and a numeric Timeout.") from None
        if task.get("Type") not in SHELL_TASK_TYPES:
            raise ApiError(400, "InvalidParameter", f"Task type {task.get('Type')!r} cannot run here; the "
                           f"simulator runs {', '.join(sorted(SHELL_TASK_TYPES))} tasks.")
        self._group(group)
        biz_date = params.get("BizDate")
        run = self.workflows.submit(str(task.get("Name") or "adhoc"), group, script, timeout_s,
                                    biz_date=int(biz_date) if biz_date else None)
        return {"WorkflowInstanceId": run.workflow_id}

    def _run_for_workflow(self, params: dict[str, str], key: str) -> TaskRun:
        run = self.workflows.by_workflow(_int(params.get(key)))
        if run is None:
            raise ApiError(400, "Invalid.WorkflowInstance.NotFound", "The workflow instance does not exist.")
        return run

    def _instance(self, run: TaskRun) -> dict[str, Any]:
        """The fields a workflow instance and its task instance share, times in epoch milliseconds."""
        fields: dict[str, Any] = {"Status": run.status, "ProjectId": int(self.world.workspace_id),
                                  "Owner": "preflight-ci", "CreateTime": int(run.created * 1000)}
        if run.started is not None:
            fields["StartedTime"] = int(run.started * 1000)
        if run.finished is not None:
            fields["FinishedTime"] = int(run.finished * 1000)
        return fields

    def _task_instance(self, run: TaskRun) -> dict[str, Any]:
        return {"Id": run.task_id, "WorkflowInstanceId": run.workflow_id, "TaskName": run.name, "TaskType":
                "DIDE_SHELL", "RunNumber": 1, "TriggerType": "Manual", "WorkflowInstanceType": "Manual",
                "RuntimeResource": {"ResourceGroupId": run.resource_group_id}, "Timeout": run.timeout_s,
                **self._instance(run)}

    def get_workflow_instance(self, params: dict[str, str]) -> dict[str, Any]:
        run = self._run_for_workflow(params, "Id")
        return {"WorkflowInstance": {"Id": run.workflow_id, "Name": run.name, "Type": "Manual", "EnvType": "Prod",
                                     **self._instance(run)}}

    def list_task_instances(self, params: dict[str, str]) -> dict[str, Any]:
        run = self._run_for_workflow(params, "WorkflowInstanceId")
        # Task instances are listed by business date: another date than the submission's lists none.
        bizdate = params.get("Bizdate")
        listed = [self._task_instance(run)] if run.biz_date is None or bizdate in (None, str(run.biz_date)) else []
        page, number, size = paginate(listed, params)
        return {"PagingInfo": {"TaskInstances": page, "PageNumber": number, "PageSize": size,
                               "TotalCount": len(listed)}}

    def _task(self, params: dict[str, str]) -> TaskRun:
        run = self.workflows.tasks.get(_int(params.get("Id")))
        if run is None:
            raise ApiError(400, "Invalid.TaskInstance.NotFound", "The task instance does not exist.")
        return run

    def get_task_instance(self, params: dict[str, str]) -> dict[str, Any]:
        return {"TaskInstance": self._task_instance(self._task(params))}

    def get_task_instance_log(self, params: dict[str, str]) -> dict[str, Any]:
        run = self._task(params)
        if params.get("RunNumber") not in (None, "", "1"):
            raise ApiError(400, "Invalid.TaskInstance.RunNumber", f"Run {params['RunNumber']} does not exist.")
        return {"TaskInstanceLog": run.log}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _epoch_ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


__all__ = ["SHELL_TASK_TYPES", "DataWorksActions"]
