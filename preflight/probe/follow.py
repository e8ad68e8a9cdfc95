"""Submit one resource group's collector as an ad hoc Shell task and follow it to its log, with backoff and a
deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from preflight.cloud.imports import sdk_models
from preflight.cloud.session import project_id
from preflight.engine.redact import redact
from preflight.engine.text import shorten
from preflight.errors import CloudError, ConfigError, LogFormatError
from preflight.probe.bizdate import BusinessDate, business_date
from preflight.probe.logs import decode_payload
from preflight.probe.owner import Owner
from preflight.probe.payload import payload_observations
from preflight.probe.script import build_shell_script, group_plan

if TYPE_CHECKING:
    from types import ModuleType

    from preflight.config import Config, TargetConfig

TERMINAL = ("Success", "Failure", "Failed", "Stopped", "Cancelled")
STAGES = {"NotRun": "submitted, not started yet", "WaitTime": "waiting for its time",
          "WaitResource": "waiting for resources of the group", "Running": "running"}
# Codes worth asking again while following: the instance is still there, the answer was just not.
TRANSIENT = ("Throttling", "Timeout", "ConnectionError", "InvalidResponse", "ServiceUnavailable", "InternalError")
LOG_TAIL_LINES = 20
LOG_LINE_CHARS = 300
# After the deadline, one short attempt to read what the task printed so far: a timeout with its log tail
# says more than a bare timeout.
LOG_GRACE_S = 3.0
# Polling a submitted instance waits 1, 2, 4 ... s up to the cap between looks.
POLL_BACKOFF_S = (1.0, 8.0)

Stage = Callable[[str, str], None]
# A DataWorks call: the action and its SDK request model in, the answer's body out, or CloudError.
ApiCall = Callable[[str, Any], Awaitable[dict[str, Any]]]


class _OutOfTime(Exception):
    """The follower's deadline passed during a call."""


def _tail(log: str) -> list[str]:
    return [shorten(redact(line), LOG_LINE_CHARS) for line in log.rstrip().splitlines()[-LOG_TAIL_LINES:]]


def _transient(error: CloudError) -> bool:
    return error.code.startswith(TRANSIENT) or (error.status_code or 0) >= 500


class Follower:
    """Submits one resource group's collector and follows it to the end, with backoff and a deadline.

    `call(action, request)` is a cloud API call (the run's CloudSession) that raises CloudError; groups are
    followed concurrently. Requests are the SDK's typed models, built once its import has finished. `target`
    names the submission; the collector observes `members` too (other targets on the same group), so a group
    runs one instance however many targets share it.
    """

    def __init__(self, config: Config, target: TargetConfig, call: ApiCall, *, send_key: bool, deadline: float,
                 stage: Stage, backoff: tuple[float, float] = POLL_BACKOFF_S, owner: Owner | None = None,
                 members: tuple[TargetConfig, ...] = ()) -> None:
        """`owner` is the task's Owner; without one, `in_network.owner` (ConfigError when that is not set).
        `members` are the targets whose services the one collector on this resource group observes."""
        if owner is None:
            if not config.in_network.owner:
                raise ConfigError("the in-network task needs an owner: set in_network.owner", field="in_network.owner")
            owner = Owner(config.in_network.owner, "in_network.owner")
        self.owner = owner
        self.config = config
        self.target = target
        self.members = members or (target,)
        self.call = call
        self.send_key = send_key
        self.deadline = deadline
        self.stage = stage
        self.backoff = backoff
        self.models: ModuleType | None = None

    async def _call(self, action: str, build: Callable[[ModuleType], Any], *, grace: float = 0.0) -> dict[str, Any]:
        """`build(models)` is the request; the SDK's import counts against the deadline like the call."""
        remaining = self.deadline + grace - time.monotonic()
        if remaining <= 0:
            raise _OutOfTime(action)

        async def ask() -> dict[str, Any]:
            if self.models is None:
                self.models = await sdk_models("dataworks")
            return await self.call(action, build(self.models))

        try:
            return await asyncio.wait_for(ask(), remaining)
        except asyncio.TimeoutError:
            raise _OutOfTime(action) from None

    @property
    def project(self) -> int:
        assert self.target.workspace is not None
        return project_id(self.target.workspace, "dataworks:ExecuteAdhocWorkflowInstance")

    def submission(self, models: ModuleType, script: str, budget: float, bizdate: BusinessDate) -> Any:
        """ExecuteAdhocWorkflowInstance's request: one Shell task on the target's resource group, owned by the
        owner at the top level and in the task (both required), BizDate as a millisecond timestamp."""
        target, settings = self.target, self.config.in_network
        task = models.ExecuteAdhocWorkflowInstanceRequestTasks(
            client_unique_code=f"preflight_{target.name}_{int(time.time() * 1000)}", name="dw_preflight_probe",
            type=settings.task_type, owner=self.owner.id,
            script=models.ExecuteAdhocWorkflowInstanceRequestTasksScript(content=script),
            runtime_resource=models.ExecuteAdhocWorkflowInstanceRequestTasksRuntimeResource(
                resource_group_id=target.resource_group),
            timeout=int(budget))
        return models.ExecuteAdhocWorkflowInstanceRequest(
            project_id=self.project, name=f"dw_preflight_{target.name}", env_type="Prod", biz_date=bizdate.ms,
            owner=self.owner.id, tasks=[task])

    async def run(self) -> dict[str, Any]:
        """The probe record: instance ids, statuses, timings, and on success the decoded payload.

        Raises CloudError only when the submission itself is refused; anything after that is in the record.
        """
        target, settings = self.target, self.config.in_network
        started = time.monotonic()
        budget = max(10.0, min(settings.timeout_s, self.deadline - started) - 5.0)
        plan = group_plan(self.config, self.members, send_key=self.send_key, budget_s=budget * 0.8)
        script = build_shell_script(plan, settings.python)
        bizdate = business_date(self.config.region_of(target))
        record: dict[str, Any] = {"resource_group": target.resource_group, "task_type": settings.task_type,
                                  "key_sent": self.send_key, "owner": self.owner.id, "owner_source": self.owner.source,
                                  "biz_date": bizdate.date.isoformat(), "biz_date_ms": bizdate.ms,
                                  "biz_date_zone": bizdate.zone, "statuses": []}
        try:
            answer = await self._call("ExecuteAdhocWorkflowInstance",
                                      lambda models: self.submission(models, script, budget, bizdate))
        except _OutOfTime:
            return {**record, "status": "NotSubmitted", "problem": "ExecuteAdhocWorkflowInstance did not answer "
                    "before the deadline"}
        workflow_id = answer.get("WorkflowInstanceId")
        if not workflow_id:
            return {**record, "status": "NotSubmitted",
                    "problem": "ExecuteAdhocWorkflowInstance answered without a WorkflowInstanceId"}
        record["workflow_instance_id"] = workflow_id
        self.stage(target.name, f"collector submitted to {target.resource_group} (workflow instance {workflow_id})")
        try:
            await self._follow(record, workflow_id, bizdate)
        except CloudError as exc:
            record.update({"status": "Unfollowed", "problem": f"{exc.action or 'a call'} failed: {exc}",
                           "code": exc.code, "auth_action": exc.auth_action, "request_id": exc.request_id})
        record["seconds"] = round(time.monotonic() - started, 1)
        return record

    async def _poll(self, workflow_id: Any, bizdate: BusinessDate, task_id: Any) -> tuple[Any, str]:
        """One look at the instance: (task instance id or None, status)."""
        if task_id is not None:
            answer = await self._call("GetTaskInstance", lambda models: models.GetTaskInstanceRequest(id=task_id))
            return task_id, str((answer.get("TaskInstance") or {}).get("Status") or "Unknown")
        workflow = await self._call("GetWorkflowInstance",
                                    lambda models: models.GetWorkflowInstanceRequest(id=workflow_id))
        workflow_status = str((workflow.get("WorkflowInstance") or {}).get("Status") or "NotRun")
        # Task instances are listed by business date: the submission's own.
        listing = await self._call("ListTaskInstances", lambda models: models.ListTaskInstancesRequest(
            project_id=self.project, bizdate=bizdate.ms, workflow_instance_id=workflow_id))
        instances = (listing.get("PagingInfo") or {}).get("TaskInstances") or []
        if instances and isinstance(instances[0], dict) and instances[0].get("Id") is not None:
            return instances[0]["Id"], str(instances[0].get("Status") or "Unknown")
        # A workflow that ended before its task appeared has no task log to read.
        return None, workflow_status

    async def _follow(self, record: dict[str, Any], workflow_id: Any, bizdate: BusinessDate) -> None:
        task_id, delay = None, self.backoff[0]
        while True:
            try:
                task_id, status = await self._poll(workflow_id, bizdate, task_id)
            except CloudError as exc:
                if not _transient(exc):
                    raise
                record["transient_errors"] = record.get("transient_errors", 0) + 1
                status = record["statuses"][-1] if record["statuses"] else "NotRun"
            except _OutOfTime:
                status = "?"
            record["task_instance_id"] = task_id
            if status != "?" and (not record["statuses"] or record["statuses"][-1] != status):
                record["statuses"].append(status)
                self.stage(self.target.name, STAGES.get(status, status.lower()))
            if status in TERMINAL:
                break
            if status == "?" or time.monotonic() + delay > self.deadline:
                record["status"] = "Timeout"
                if task_id is not None:
                    record["log_tail"] = _tail(await self._read_log(task_id, quiet=True))
                return
            await asyncio.sleep(delay)
            delay = min(self.backoff[1], delay * 2)  # 1, 2, 4 ... s: many groups stay under the poll's limit
        record["status"] = status
        if task_id is None:
            record["log_tail"] = []
            return
        log = await self._read_log(task_id)
        if status != "Success":
            record["log_tail"] = _tail(log)
            return
        try:
            payload = decode_payload(log, source=f"the log of task instance {task_id}")
            for member in self.members:
                payload_observations(payload, self.config, member)
        except LogFormatError as exc:
            record.update({"status": "LogUnreadable", "problem": str(exc), "log_tail": _tail(log)})
            return
        record["payload"] = payload

    async def _read_log(self, task_id: Any, *, quiet: bool = False) -> str:
        """The task's log; with quiet (after the deadline) whatever can be had in a short grace, else ""."""
        delay = self.backoff[0]
        while True:
            try:
                answer = await self._call("GetTaskInstanceLog",
                                          lambda models: models.GetTaskInstanceLogRequest(id=task_id, run_number=1),
                                          grace=LOG_GRACE_S)
                break
            except _OutOfTime:
                if quiet:
                    return ""
                raise CloudError("GetTaskInstanceLog did not answer before the deadline", code="Timeout",
                                 action="dataworks:GetTaskInstanceLog") from None
            except CloudError as exc:
                if quiet:
                    return ""
                if not _transient(exc) or time.monotonic() + delay > self.deadline + LOG_GRACE_S:
                    raise
            await asyncio.sleep(delay)
            delay = min(self.backoff[1], delay * 1.6)
        log = answer.get("TaskInstanceLog")
        log = log if isinstance(log, str) else ""
        if not quiet:
            self.stage(self.target.name, f"log read ({len(log)} characters)")
        return log


__all__ = ["LOG_GRACE_S", "POLL_BACKOFF_S", "ApiCall", "Follower", "Stage"]
