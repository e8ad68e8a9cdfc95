"""A loopback stand-in for the DataWorks, PrivateZone, PrivateLink and VPC OpenAPIs: the gateway's signature and
contract checks, faults and routing, with each product's actions in its own module."""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from preflight.simulator import contract
from preflight.simulator.actions import ApiError
from preflight.simulator.dataworks_api import DataWorksActions
from preflight.simulator.flowcontrol import THROTTLED_CODE, THROTTLED_MESSAGE, THROTTLED_STATUS, FlowControl
from preflight.simulator.network_api import NetworkActions, eni_ip
from preflight.simulator.scenarios import World
from preflight.simulator.server import LoopbackHandler, LoopbackServer
from preflight.simulator.signature import SignatureProblem, verify
from preflight.simulator.workflow import WorkflowRunner

# Ad hoc task scripts are the largest bodies the SDK sends; nothing legitimate comes near this.
MAX_BODY_BYTES = 8 * 1024 * 1024
PRODUCTS = {"2024-05-18": "dataworks", "2018-01-01": "pvtz", "2020-04-15": "privatelink", "2016-04-28": "vpc",
            "2015-04-01": "sts"}


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


class CloudApi(DataWorksActions, NetworkActions):
    """The cloud APIs of one World on 127.0.0.1, with the scenario's faults and RAM denials."""

    def __init__(self, world: World, *, faults: frozenset[str] = frozenset(), latency_s: float = 0.0,
                 dns_port: int = 0, rate_limit: float = 0.0, rate_burst: float | None = None) -> None:
        self.world = world
        # Flow control per action and second, as the gateway limits each account (0: none).
        self.flow = FlowControl(rate_limit, rate_burst) if rate_limit > 0 else None
        self.throttled: dict[str, int] = {}
        self.faults = faults
        self.latency_s = latency_s
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
        if dns_port:  # the simulator's DNS server, for the names an ad hoc task's script resolves
            environment["PREFLIGHT_NAMESERVERS"] = f"127.0.0.1:{dns_port}"
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


__all__ = ["ApiError", "CloudApi", "eni_ip"]
