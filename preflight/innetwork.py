"""Run the collector inside a resource group: submit it as an ad hoc Shell task, follow it, read its log back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from preflight.config import Config, TargetConfig
from preflight.errors import CloudError, LogFormatError
from preflight.innetwork_log import decode_payload
from preflight.redact import redact

TERMINAL = ("Success", "Failure", "Failed", "Stopped", "Cancelled")
STAGES = {"NotRun": "submitted, not started yet", "WaitTime": "waiting for its time",
          "WaitResource": "waiting for resources of the group", "Running": "running"}
LOG_TAIL_LINES = 20

Stage = Callable[[str, str], None]


@dataclass
class Collected:
    """What in-network runs brought back, shaped for the runner."""

    observations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


def _tail(log: str) -> list[str]:
    return [redact(line)[:300] for line in log.rstrip().splitlines()[-LOG_TAIL_LINES:]]


def payload_observations(payload: Mapping[str, Any], config: Config, target: TargetConfig
                         ) -> dict[tuple[str, str], dict[str, Any]]:
    """The runner's observations for one target from a decoded payload (every service gets an entry)."""
    observed = (payload.get("targets") or {}).get(target.name) or {}
    return {(target.name, service.name): dict(observed.get(service.name) or {}) for service in target.services}


class Follower:
    """Submits one target's collector and follows it to the end, with backoff and a deadline."""

    def __init__(self, config: Config, target: TargetConfig, call: Callable[..., dict[str, Any]], *,
                 send_key: bool, deadline: float, stage: Stage) -> None:
        self.config = config
        self.target = target
        self.call = call
        self.send_key = send_key
        self.deadline = deadline
        self.stage = stage

    async def _call(self, action: str, method: str = "GET", **params: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.call(action, method, params))

    async def run(self) -> dict[str, Any]:
        """The probe record: instance ids, statuses, timings, and on success the decoded payload."""
        from preflight.probe.script import build_plan, build_shell_script

        target, settings = self.target, self.config.in_network
        started = time.monotonic()
        budget = max(10.0, min(settings.timeout_s, self.deadline - started) - 5.0)
        plan = build_plan(self.config, target, send_key=self.send_key, budget_s=budget * 0.8)
        script = build_shell_script(plan, settings.python)
        record: dict[str, Any] = {"resource_group": target.resource_group, "task_type": settings.task_type,
                                  "key_sent": self.send_key, "statuses": []}
        task = {"ClientUniqueCode": f"preflight_{target.name}_{int(time.time())}", "Name": "dw_preflight_probe",
                "Type": settings.task_type, "Script": {"Content": script},
                "RuntimeResource": {"ResourceGroupId": target.resource_group}, "Timeout": int(budget)}
        if settings.owner:
            task["Owner"] = settings.owner
        bizdate = (dt.date.today() - dt.timedelta(days=1)).isoformat()
        params: dict[str, Any] = {"ProjectId": target.workspace, "Name": f"dw_preflight_{target.name}",
                                  "EnvType": "Prod", "BizDate": bizdate, "Tasks": json.dumps([task])}
        if settings.owner:
            params["Owner"] = settings.owner
        answer = await self._call("ExecuteAdhocWorkflowInstance", "POST", **params)
        workflow_id = answer.get("WorkflowInstanceId")
        record["workflow_instance_id"] = workflow_id
        self.stage(target.name, f"collector submitted to {target.resource_group} (workflow instance {workflow_id})")
        task_id, status, delay = None, "NotRun", 0.1
        while True:
            if task_id is None:
                listing = await self._call("ListTaskInstances", ProjectId=target.workspace, Bizdate=bizdate,
                                           WorkflowInstanceId=workflow_id)
                instances = (listing.get("PagingInfo") or {}).get("TaskInstances") or []
                if instances:
                    task_id = instances[0].get("Id")
                    record["task_instance_id"] = task_id
                    status = str(instances[0].get("Status"))
            else:
                status = str(((await self._call("GetTaskInstance", Id=task_id)).get("TaskInstance") or {})
                             .get("Status"))
            if not record["statuses"] or record["statuses"][-1] != status:
                record["statuses"].append(status)
                self.stage(target.name, STAGES.get(status, status.lower()))
            if status in TERMINAL:
                break
            if time.monotonic() + delay > self.deadline:
                record.update({"status": "Timeout", "seconds": round(time.monotonic() - started, 1)})
                return record
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 1.6)
        record.update({"status": status, "seconds": round(time.monotonic() - started, 1)})
        log = str((await self._call("GetTaskInstanceLog", Id=task_id, RunNumber=1)).get("TaskInstanceLog") or "")
        self.stage(target.name, f"log read ({len(log)} characters)")
        if status != "Success":
            record["log_tail"] = _tail(log)
            return record
        try:
            record["payload"] = decode_payload(log, source=f"the log of task instance {task_id}")
        except LogFormatError as exc:
            record.update({"status": "LogUnreadable", "problem": str(exc), "log_tail": _tail(log)})
        return record


async def collect(config: Config, targets: list[TargetConfig], *, send_key: bool, deadline: float,
                  stage: Stage) -> Collected:
    """Run the collector in every target's resource group at once and shape what came back for the runner."""
    from preflight.cloud import CloudSession

    session = CloudSession(config)
    collected = Collected()

    async def one(target: TargetConfig) -> None:
        origin = f"resource-group:{target.resource_group}"
        collected.origins[target.name] = origin
        if not (target.workspace and target.resource_group):
            record: dict[str, Any] = {"status": "NotSubmitted",
                                      "problem": "the target needs a workspace and a resource_group"}
        else:
            def call(action: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
                return session.call("dataworks", action, params, config.region_of(target), method)

            try:
                record = await Follower(config, target, call, send_key=send_key, deadline=deadline,
                                        stage=stage).run()
            except CloudError as exc:
                record = {"status": "NotSubmitted", "problem": str(exc), "code": exc.code,
                          "auth_action": exc.auth_action, "request_id": exc.request_id}
        payload = record.pop("payload", None)
        if payload is not None:
            record["python"] = payload.get("python")
            collected.observations.update(payload_observations(payload, config, target))
        collected.observations[(target.name, "")] = {"probe": record}

    await asyncio.gather(*(one(target) for target in targets))
    return collected


def ingest(log: str, config: Config, source: str) -> Collected:
    """Observations from a saved node log (the marked line), for every target of the config it names."""
    payload = decode_payload(log, source=source)
    collected = Collected()
    origin = str(payload.get("origin") or "resource-group:unknown")
    for target in config.targets:
        if target.name in (payload.get("targets") or {}):
            collected.origins[target.name] = origin
            collected.observations.update(payload_observations(payload, config, target))
            collected.observations[(target.name, "")] = {"probe": {"status": "Success", "source": source,
                                                                   "python": payload.get("python")}}
    if not collected.origins:
        from preflight.errors import UsageError

        names = ", ".join(sorted(payload.get("targets") or {})) or "none"
        raise UsageError(f"{source}: the log observed targets {names}, none of which is in the config")
    return collected


__all__ = ["Collected", "Follower", "collect", "ingest", "payload_observations"]
