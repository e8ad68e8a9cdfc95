"""A loopback stand-in for the DataWorks, PrivateZone, PrivateLink and VPC OpenAPIs, signature checked."""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from preflight.simulator import contract
from preflight.simulator.flowcontrol import THROTTLED_CODE, THROTTLED_MESSAGE, THROTTLED_STATUS, FlowControl
from preflight.simulator.scenarios import SimModel, World
from preflight.simulator.server import LoopbackHandler, LoopbackServer
from preflight.simulator.signature import SignatureProblem, verify
from preflight.simulator.workflow import TaskRun, WorkflowRunner

if TYPE_CHECKING:
    from preflight.simulator.harness import Simulator

# Ad hoc task scripts are the largest bodies the SDK sends; nothing legitimate comes near this.
MAX_BODY_BYTES = 8 * 1024 * 1024
# The task types whose Script.Content the simulator runs with /bin/sh.
SHELL_TASK_TYPES = frozenset({"DIDE_SHELL"})
PRODUCTS = {"2024-05-18": "dataworks", "2018-01-01": "pvtz", "2020-04-15": "privatelink", "2016-04-28": "vpc",
            "2015-04-01": "sts"}


class ApiError(Exception):
    """An error answer in the OpenAPI shape."""

    def __init__(self, status: int, code: str, message: str, *, denied: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.denied = denied
        self.headers = headers or {}


def _page(items: list[Any], params: dict[str, str], default_size: int = 10) -> tuple[list[Any], int, int]:
    try:
        number = max(1, int(params.get("PageNumber") or 1))
        size = max(1, min(100, int(params.get("PageSize") or default_size)))
    except ValueError:
        raise ApiError(400, "InvalidParameter", "PageNumber and PageSize must be integers.") from None
    return items[(number - 1) * size: number * size], number, size


def eni_ip(model_index: int, vpc_index: int) -> str:
    return f"10.{10 + vpc_index}.{model_index // 250}.{10 + model_index % 250}"


class _Server(LoopbackServer):
    api: CloudApi


class _Handler(LoopbackHandler):
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        api = self.server.api
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._error(api.next_request_id(), ApiError(400, "InvalidParameter", "Content-Length is missing a "
                                                        "sane value."))
            return
        body = self.rfile.read(length) if length else b""
        _path, _, raw_query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        request_id = api.next_request_id()
        if api.latency_s:
            api.stopping.wait(api.latency_s)
        try:
            verify(self.command, raw_query, headers, body, {api.world.access_key_id: api.world.access_key_secret})
            query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) \
                if "form" in headers.get("content-type", "") else {}
            answer = api.dispatch(headers.get("x-acs-version", ""), headers.get("x-acs-action", ""), {**query, **form},
                                  method=self.command, query=query, form=form)
        except SignatureProblem as problem:
            self._error(request_id, ApiError(problem.status, problem.code, str(problem)))
            return
        except ApiError as error:
            self._error(request_id, error)
            return
        except Exception:  # a simulator bug must still answer, as the real gateway's 500 does
            self._error(request_id, ApiError(500, "InternalError", "The request processing has failed due to "
                                             "some unknown error."))
            return
        if isinstance(answer, bytes):
            self._send(200, answer, "text/html", {})
            return
        self._send(200, json.dumps({"RequestId": request_id, **answer}).encode(), "application/json", {})

    def _error(self, request_id: str, error: ApiError) -> None:
        if isinstance(error, _SuccessFalse) and error.legacy:
            legacy = {"RequestId": request_id, "Success": False, "HttpStatusCode": 200, "ErrorCode": error.code,
                      "ErrorMessage": error.message}
            self._send(200, json.dumps(legacy).encode(), "application/json", error.headers)
            return
        payload: dict[str, Any] = {"RequestId": request_id, "HostId": "dataworks.simulator", "Code": error.code,
                                   "Message": error.message,
                                   "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}"}
        if error.denied:
            payload["AccessDeniedDetail"] = error.denied
        if error.status == 200:  # the API's "it failed, but over HTTP 200" answer
            payload["Success"] = False
        self._send(error.status, json.dumps(payload).encode(), "application/json", error.headers)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.answer(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                             ("x-acs-request-id", "sim"), *headers.items()], body)


class CloudApi:
    """The cloud APIs of one World on 127.0.0.1, with the scenario's faults and RAM denials."""

    def __init__(self, world: World, *, faults: frozenset[str] = frozenset(), latency_s: float = 0.0,
                 simulator: Simulator | None = None, rate_limit: float = 0.0,
                 rate_burst: float | None = None) -> None:
        self.world = world
        # Flow control per action and second, as the gateway limits each account (0: none).
        self.flow = FlowControl(rate_limit, rate_burst) if rate_limit > 0 else None
        self.throttled: dict[str, int] = {}
        self.faults = faults
        self.latency_s = latency_s
        self.simulator = simulator
        self.port = 0
        self.stopping = threading.Event()
        self.calls: dict[str, int] = {}
        self.contract = contract.shared()
        self._deviations: dict[tuple[str, str, str | None, str], int] = {}
        self._refusals: dict[tuple[str, str, str | None, str], int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        environment = {}
        if simulator is not None and simulator.dns_port:
            environment["PREFLIGHT_NAMESERVERS"] = f"127.0.0.1:{simulator.dns_port}"
        self.workflows = WorkflowRunner(environment, mode=world.task_mode)
        self._handlers: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("dataworks", "GetProject"): self.get_project,
            ("dataworks", "GetResourceGroup"): self.get_resource_group,
            ("dataworks", "ListResourceGroupAssociateProjects"): self.list_associated_projects,
            ("dataworks", "ListResourceGroups"): self.list_resource_groups,
            ("dataworks", "ListNetworks"): self.list_networks,
            ("dataworks", "ListRoutes"): self.list_routes,
            ("dataworks", "GetNode"): self.get_node,
            ("dataworks", "ListNodes"): self.list_nodes,
            ("dataworks", "GetTask"): self.get_task,
            ("dataworks", "ExecuteAdhocWorkflowInstance"): self.execute_adhoc,
            ("dataworks", "GetWorkflowInstance"): self.get_workflow_instance,
            ("dataworks", "ListTaskInstances"): self.list_task_instances,
            ("dataworks", "GetTaskInstance"): self.get_task_instance,
            ("dataworks", "GetTaskInstanceLog"): self.get_task_instance_log,
            ("pvtz", "DescribeZones"): self.describe_zones,
            ("pvtz", "DescribeZoneInfo"): self.describe_zone_info,
            ("pvtz", "DescribeZoneVpcTree"): self.describe_zone_vpc_tree,
            ("pvtz", "DescribeZoneRecords"): self.describe_zone_records,
            ("privatelink", "ListVpcEndpoints"): self.list_vpc_endpoints,
            ("privatelink", "ListVpcEndpointZones"): self.list_vpc_endpoint_zones,
            ("vpc", "DescribeVSwitchAttributes"): self.describe_vswitch,
            ("sts", "GetCallerIdentity"): self.get_caller_identity,
        }

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self, port: int = 0) -> int:
        server = _Server(("127.0.0.1", port), _Handler)
        server.api = self
        self._server = server
        self.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.port

    def stop(self) -> None:
        self.stopping.set()
        self.workflows.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def next_request_id(self) -> str:
        return f"5E1C0A6B-0000-4000-8000-{next(self._ids):012d}"

    # --- dispatch ----------------------------------------------------------------------------------
    def dispatch(self, version: str, action: str, params: dict[str, str], *, method: str | None = None,
                 query: dict[str, str] | None = None, form: dict[str, str] | None = None) -> Any:
        """Answer one request; with its method and where each parameter came, it is held to the SDK's contract."""
        product = PRODUCTS.get(version)
        handler = self._handlers.get((product or "", action))
        if handler is None:
            raise ApiError(404, "InvalidAction.NotFound", f"Specified api {action} ({version}) is not found.")
        with self._lock:
            self.calls[action] = self.calls.get(action, 0) + 1
        if self.flow is not None and self.flow.admit(product or "", self.world.region, action):
            with self._lock:
                self.throttled[action] = self.throttled.get(action, 0) + 1
            raise ApiError(THROTTLED_STATUS, THROTTLED_CODE, THROTTLED_MESSAGE)
        if method is not None:
            self._hold_to_contract(product or "", action, method, query or {}, form or {})
        auth_action = f"{product}:{action}"
        if auth_action in self.world.ram_denied:
            raise ApiError(403, "Forbidden.RAM", f"User not authorized to operate on the specified resource: "
                           f"{auth_action}", denied={"AuthAction": auth_action, "AuthPrincipalType": "SubUser",
                                                     "AuthPrincipalDisplayName": "preflight-ci",
                                                     "NoPermissionType": "ImplicitDeny", "PolicyType": "Account"})
        self._faults(action)
        return handler(params)

    def _hold_to_contract(self, product: str, action: str, method: str, query: dict[str, str],
                          form: dict[str, str]) -> None:
        """Refuse what the gateway refuses (a required parameter left out, a non-integer for an integer); record
        every other departure from the SDK's contract."""
        operation = self.contract.operation(product, action)
        if operation is None:  # the product's SDK is not installed: nothing to hold the request to
            return
        findings = contract.check(operation, method, query, form)
        refusal = next((f for f in findings if f.refused), None)
        with self._lock:
            for finding in findings:
                if not finding.refused:
                    key = (action, finding.kind, finding.parameter, finding.detail)
                    self._deviations[key] = self._deviations.get(key, 0) + 1
            if refusal is not None:
                key = (action, refusal.kind, refusal.parameter, refusal.detail)
                self._refusals[key] = self._refusals.get(key, 0) + 1
        if refusal is None:
            return
        if refusal.kind == "missing":
            raise ApiError(400, "MissingParameter", f'The input parameter "{refusal.parameter}" that is mandatory '
                           "for processing this request is not supplied.")
        raise ApiError(400, "InvalidParameter", f'The specified parameter "{refusal.parameter}" is not valid: '
                       f"{refusal.detail}.")

    def deviations(self) -> list[dict[str, Any]]:
        """Departures from the SDKs' contract the simulator answered anyway: another method, a parameter in the
        other place, a parameter the model does not know."""
        with self._lock:
            return _records(self._deviations)

    def refusals(self) -> list[dict[str, Any]]:
        """Requests refused for their contract, as the gateway refuses them (MissingParameter, InvalidParameter)."""
        with self._lock:
            return _records(self._refusals)

    def _faults(self, action: str) -> None:
        faults = self.faults
        if action == "GetResourceGroup" and "get-resource-group-503" in faults:
            raise ApiError(503, "ServiceUnavailable", "The request has failed due to a temporary failure of the "
                           "server.")
        if action == "ListNetworks" and "list-networks-throttled" in faults:
            raise ApiError(400, "Throttling.User", "Request was denied due to user flow control.",
                           headers={"x-acs-retry-after": "200"})
        if action == "GetProject" and "get-project-timeout" in faults:
            self.stopping.wait(6.0)
        if action == "GetProject" and "get-project-success-false" in faults:
            raise _SuccessFalse()
        if action == "GetResourceGroup" and "get-resource-group-error-code" in faults:
            raise _SuccessFalse("InternalError.System", "The system is busy; try again later.", legacy=True)

    # --- DataWorks ---------------------------------------------------------------------------------
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
        import json

        world = self.world
        wanted = json.loads(params["ResourceGroupTypes"]) if params.get("ResourceGroupTypes") else None
        groups = [{"Id": group, "Name": group.split("_")[-1], "ResourceGroupType": world.resource_group_type,
                   "Status": world.resource_group_status, "PaymentType": "PostPaid", "CreateTime": 1740787200000}
                  for group in world.resource_group_ids if wanted is None or world.resource_group_type in wanted]
        page, number, size = _page(groups, params)
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
        page, number, size = _page(networks, params)
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
        page, number, size = _page(routes, params)
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
        page, number, size = _page(nodes, params)
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
        page, number, size = _page(listed, params)
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

    # --- PrivateZone, PrivateLink, VPC -------------------------------------------------------------
    def _models_in(self, vpc_id: str | None) -> list[tuple[int, SimModel]]:
        return [(index, m) for index, m in enumerate(self.world.models) if vpc_id is None or vpc_id in m.allowed_vpcs]

    def describe_zones(self, params: dict[str, str]) -> dict[str, Any]:
        keyword = (params.get("Keyword") or "").lower()
        exact = (params.get("SearchMode") or "LIKE").upper() == "EXACT"  # LIKE (the default) finds substrings
        records = 1 + self.world.zone_extra_records
        zones = [{"ZoneId": f"zone-{m.service_id}", "ZoneName": m.host, "RecordCount": records,
                  "IsPtr": False, "ProxyPattern": "ZONE"} for _, m in self._models_in(params.get("QueryVpcId") or None)
                 if (m.host == keyword if exact else keyword in m.host)]
        page, number, size = _page(zones, params, 20)
        return {"Zones": {"Zone": page}, "TotalItems": len(zones), "PageNumber": number, "PageSize": size,
                "TotalPages": (len(zones) + size - 1) // size}

    def _zone_model(self, params: dict[str, str]) -> tuple[int, SimModel]:
        """The zone's model and its place in the world (which numbers its record and address)."""
        zone = params.get("ZoneId")
        found = next(((i, m) for i, m in enumerate(self.world.models) if f"zone-{m.service_id}" == zone), None)
        if found is None:
            raise ApiError(400, "Zone.Invalid.Id", "The zone does not exist.")
        return found

    def describe_zone_info(self, params: dict[str, str]) -> dict[str, Any]:
        _, model = self._zone_model(params)
        return {"ZoneId": params.get("ZoneId"), "ZoneName": model.host,
                "BindVpcs": {"Vpc": [{"VpcId": vpc, "RegionId": self.world.region, "VpcName": vpc}
                                     for vpc in model.allowed_vpcs]}}

    def describe_zone_vpc_tree(self, params: dict[str, str]) -> dict[str, Any]:
        """Every zone of the account and the VPCs bound to it, in one answer (the API has no paging)."""
        records = 1 + self.world.zone_extra_records
        zones = [{"ZoneId": f"zone-{m.service_id}", "ZoneName": m.host, "RecordCount": records, "IsPtr": False,
                  "ZoneType": "AUTH_ZONE",
                  "Vpcs": {"Vpc": [{"VpcId": vpc, "RegionId": self.world.region, "VpcName": vpc,
                                    "RegionName": self.world.region} for vpc in m.allowed_vpcs]}}
                 for m in self.world.models]
        return {"Zones": {"Zone": zones}}

    def _zone_records(self, index: int) -> list[dict[str, Any]]:
        """The zone's records: the world's extra ones (hosts synchronised from ECS), then the model's own."""
        extra = [{"RecordId": 100000 + index * 1000 + number, "Rr": f"ecs-host-{number:03d}", "Type": "A",
                  "Value": f"172.16.{index % 250}.{10 + number % 240}", "Status": "ENABLE", "Ttl": 60}
                 for number in range(self.world.zone_extra_records)]
        # The model's name answers with the ENI address of its endpoint in each allowed VPC.
        vpcs = max(1, len(self.world.models[index].allowed_vpcs))
        own = [{"RecordId": index + 1 + 100000 * vpc_index, "Rr": "@", "Type": "A", "Value": eni_ip(index, vpc_index),
                "Status": "ENABLE", "Ttl": 60} for vpc_index in range(vpcs)]
        return [*extra, *own]

    def describe_zone_records(self, params: dict[str, str]) -> dict[str, Any]:
        """One page of the zone's records: PageSize 20 unless asked, at most 100 (the pvtz model's figures)."""
        index, _ = self._zone_model(params)
        records = self._zone_records(index)
        page, number, size = _page(records, params, 20)
        return {"Records": {"Record": page}, "TotalItems": len(records), "PageNumber": number, "PageSize": size,
                "TotalPages": (len(records) + size - 1) // size}

    def list_vpc_endpoints(self, params: dict[str, str]) -> dict[str, Any]:
        vpc = params.get("VpcId") or None
        endpoints = []
        for _index, model in self._models_in(vpc):
            for vpc_index, allowed in enumerate(model.allowed_vpcs):
                if vpc is not None and allowed != vpc:
                    continue
                endpoint_id = f"ep-{model.service_id}-{vpc_index}"
                endpoints.append({"EndpointId": endpoint_id, "VpcId": allowed, "RegionId": self.world.region,
                                  "EndpointStatus": "Active", "ConnectionStatus": "Connected",
                                  "ServiceName": f"com.aliyuncs.privatelink.{self.world.region}.dataworks-model."
                                                 f"{model.service_id}",
                                  "EndpointDomain": f"{endpoint_id}.{self.world.region}.privatelink.aliyuncs.com",
                                  "EndpointType": "Interface"})
        # Token paging as PrivateLink pages: MaxResults 1 to 1000 (default 50), NextToken until there is none.
        try:
            size = int(params.get("MaxResults") or 50)
            start = int(params.get("NextToken") or 0)
        except ValueError:
            raise ApiError(400, "IllegalParam.NextToken", "The NextToken or MaxResults is invalid.") from None
        if not 1 <= size <= 1000 or not 0 <= start <= len(endpoints):
            raise ApiError(400, "IllegalParam.MaxResults", "The MaxResults or NextToken is out of range.")
        following = start + size if start + size < len(endpoints) else None
        return {"Endpoints": endpoints[start:start + size], "TotalCount": len(endpoints), "MaxResults": size,
                **({"NextToken": str(following)} if following is not None else {})}

    def list_vpc_endpoint_zones(self, params: dict[str, str]) -> dict[str, Any]:
        endpoint_id = params.get("EndpointId") or ""
        for index, model in enumerate(self.world.models):
            for vpc_index, _ in enumerate(model.allowed_vpcs):
                if endpoint_id == f"ep-{model.service_id}-{vpc_index}":
                    return {"Zones": [{"ZoneId": f"{self.world.region}-a", "VSwitchId": "vsw-2ze0first000000001",
                                       "EniIp": eni_ip(index, vpc_index), "ZoneStatus": "Connected",
                                       "EniId": f"eni-{model.service_id}"}], "MaxResults": 50}
        raise ApiError(400, "EndpointNotFound", "The endpoint does not exist.")

    def describe_vswitch(self, params: dict[str, str]) -> dict[str, Any]:
        binding = next((b for b in self.world.bindings if b.vswitch_id == params.get("VSwitchId")), None)
        if binding is None:
            raise ApiError(404, "InvalidVSwitchId.NotFound", "The vSwitch does not exist.")
        return {"VSwitchId": binding.vswitch_id, "VpcId": binding.vpc_id, "CidrBlock": "172.16.0.0/24",
                "Status": "Available", "ZoneId": f"{self.world.region}-a"}

    # --- STS ---------------------------------------------------------------------------------------
    def get_caller_identity(self, params: dict[str, str]) -> dict[str, Any]:
        """Who the AccessKey belongs to: a RAM user of the world's account (its UserId is an Owner for DataWorks)."""
        world = self.world
        return {"AccountId": world.account_id, "UserId": world.caller_user_id, "PrincipalId": world.caller_user_id,
                "IdentityType": "RAMUser", "Arn": f"acs:ram::{world.account_id}:user/preflight-ci"}


class _SuccessFalse(ApiError):
    """HTTP 200 with Success: false; older DataWorks actions name the error ErrorCode/ErrorMessage (legacy)."""

    def __init__(self, code: str = "Internal.Error", message: str = "The request failed.", *,
                 legacy: bool = False) -> None:
        super().__init__(200, code, message)
        self.legacy = legacy


def _records(found: dict[tuple[str, str, str | None, str], int]) -> list[dict[str, Any]]:
    return [{"action": action, "kind": kind, "parameter": parameter, "detail": detail, "count": count}
            for (action, kind, parameter, detail), count in sorted(found.items(), key=lambda item: str(item[0]))]


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _epoch_ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


__all__ = ["ApiError", "CloudApi", "eni_ip"]
