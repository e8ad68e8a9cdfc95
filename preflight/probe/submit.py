"""Run the collector inside a resource group: submit it as an ad hoc Shell task, follow it, read its log back."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from preflight.cloud.session import project_id, sdk_models
from preflight.config import Config, TargetConfig
from preflight.engine.redact import redact
from preflight.engine.text import shorten
from preflight.errors import CloudError, LogFormatError, UsageError
from preflight.probe.logs import decode_payload
from preflight.probe.script import KEY_OBSERVATIONS, build_plan, build_shell_script

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

# The time zone whose midnight starts a business date in each DataWorks region (its scheduling clock); a `cn-*`
# region not listed runs on China time, any other unlisted one on UTC.
REGION_ZONES = {
    "cn-hongkong": "Asia/Hong_Kong",
    "ap-southeast-1": "Asia/Singapore",
    "ap-southeast-3": "Asia/Kuala_Lumpur",
    "ap-southeast-5": "Asia/Jakarta",
    "ap-southeast-6": "Asia/Manila",
    "ap-southeast-7": "Asia/Bangkok",
    "ap-southeast-2": "Australia/Sydney",
    "ap-northeast-1": "Asia/Tokyo",
    "ap-northeast-2": "Asia/Seoul",
    "ap-south-1": "Asia/Kolkata",
    "me-east-1": "Asia/Dubai",
    "me-central-1": "Asia/Riyadh",
    "eu-central-1": "Europe/Berlin",
    "eu-west-1": "Europe/London",
    "us-west-1": "America/Los_Angeles",
    "us-east-1": "America/New_York",
}
# Without a time zone database (a Windows Python without tzdata), each zone's standard offset from UTC, in hours.
STANDARD_OFFSETS = {"Asia/Shanghai": 8, "Asia/Hong_Kong": 8, "Asia/Singapore": 8, "Asia/Kuala_Lumpur": 8,
                    "Asia/Jakarta": 7, "Asia/Manila": 8, "Asia/Bangkok": 7, "Australia/Sydney": 10, "Asia/Tokyo": 9,
                    "Asia/Seoul": 9, "Asia/Kolkata": 5.5, "Asia/Dubai": 4, "Asia/Riyadh": 3, "Europe/Berlin": 1,
                    "Europe/London": 0, "America/Los_Angeles": -8, "America/New_York": -5, "UTC": 0}

if TYPE_CHECKING:
    from types import ModuleType

    from preflight.cloud.session import CloudSession

Stage = Callable[[str, str], None]
# A DataWorks call: the action and its SDK request model in, the answer's body out, or CloudError.
ApiCall = Callable[[str, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Collected:
    """What in-network runs brought back, shaped for the runner."""

    observations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)


class _OutOfTime(Exception):
    """The follower's deadline passed during a call."""


@dataclass(frozen=True)
class BusinessDate:
    """The business date of a submission: `ms` is its 00:00 in the region's time zone, as the API takes it."""

    date: dt.date
    ms: int
    zone: str


def region_zone(region: str) -> str:
    """The time zone of a DataWorks region (REGION_ZONES)."""
    return REGION_ZONES.get(region) or ("Asia/Shanghai" if region.startswith("cn-") else "UTC")


def business_date(region: str, now: dt.datetime | None = None) -> BusinessDate:
    """Yesterday at 00:00 in the region's time zone: the business date of a task run today, as the console gives
    it to an ad hoc run; ExecuteAdhocWorkflowInstance's BizDate and ListTaskInstances' Bizdate both carry it."""
    name = region_zone(region)
    zone: dt.tzinfo
    try:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(name)
    except Exception:  # no time zone database: the standard offset, off by an hour only in summer time
        zone = dt.timezone(dt.timedelta(hours=STANDARD_OFFSETS.get(name, 0)), name)
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone)
    day = local.date() - dt.timedelta(days=1)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    return BusinessDate(day, int(midnight.timestamp()) * 1000, name)


IDENTITY_WORDS = {"RAMUser": "RAM user", "Account": "Alibaba Cloud account"}


@dataclass(frozen=True)
class Owner:
    """Who the ad hoc task belongs to (DataWorks' Owner, an account id) and where the tool got it from."""

    id: str
    source: str


async def task_owner(config: Config, session: CloudSession, region: str) -> Owner:
    """`in_network.owner` when set, else the caller's own id: STS GetCallerIdentity's UserId (a RAM user's id, or
    the account id for the root account), or RoleId for an assumed RAM role.

    Raises ConfigError naming in_network.owner when neither can be had; a CloudError of credentials the API
    refused is raised as it is, as the run's cloud.credentials check reports it.
    """
    from preflight.cloud.session import is_credential_error
    from preflight.errors import ConfigError

    if config.in_network.owner:
        return Owner(config.in_network.owner, "in_network.owner")
    hint = ("set in_network.owner to the account id of the task's owner (the id DataWorks shows for a workspace "
            "member; for a RAM user its UID)")
    try:
        identity = await session.call("sts", "GetCallerIdentity", {}, region)
    except CloudError as exc:
        if is_credential_error(exc):
            raise
        raise ConfigError(f"in_network.owner is not set, and the caller's own id could not be read from STS "
                          f"GetCallerIdentity ({exc.code}: {shorten(str(exc), 200)}): {hint}",
                          field="in_network.owner") from None
    kind = str(identity.get("IdentityType") or "")
    if identity.get("UserId"):  # STS returns it for a RAM user (its own id) and the root account (the account id)
        words = IDENTITY_WORDS.get(kind, kind or "caller")
        return Owner(str(identity["UserId"]), f"STS GetCallerIdentity UserId ({words})")
    if identity.get("RoleId"):
        return Owner(str(identity["RoleId"]), "STS GetCallerIdentity RoleId (assumed RAM role)")
    raise ConfigError(f"in_network.owner is not set, and STS GetCallerIdentity named no UserId or RoleId for "
                      f"the caller (identity type {kind or 'unknown'}): {hint}", field="in_network.owner")


def _tail(log: str) -> list[str]:
    return [shorten(redact(line), LOG_LINE_CHARS) for line in log.rstrip().splitlines()[-LOG_TAIL_LINES:]]


def _transient(error: CloudError) -> bool:
    return error.code.startswith(TRANSIENT) or (error.status_code or 0) >= 500


def payload_observations(payload: Mapping[str, Any], config: Config, target: TargetConfig
                         ) -> dict[tuple[str, str], dict[str, Any]]:
    """The runner's observations for one target from a decoded payload (every service gets an entry).

    Raises LogFormatError when the payload does not hold this target: a log from another config or run
    must not pass for this one.
    """
    targets = payload.get("targets")
    observed = targets.get(target.name) if isinstance(targets, dict) else None
    if not isinstance(observed, dict):
        names = ", ".join(sorted(str(name) for name in targets)) if isinstance(targets, dict) else "none"
        raise LogFormatError(f"the observations are not for target {target.name} (they are for: {names or 'none'})")
    shaped: dict[tuple[str, str], dict[str, Any]] = {}
    for service in target.services:
        made = observed.get(service.name)
        # An observation that is not an object cannot be judged; leaving it out lets the check say so.
        shaped[(target.name, service.name)] = ({name: value for name, value in made.items() if isinstance(value, dict)}
                                               if isinstance(made, dict) else {})
    return shaped


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
                from preflight.errors import ConfigError

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


def group_plan(config: Config, members: tuple[TargetConfig, ...], *, send_key: bool, budget_s: float
               ) -> dict[str, Any]:
    """One collector's plan for every target on a resource group: the first's plan, observing them all."""
    plans = [build_plan(config, member, send_key=send_key, budget_s=budget_s) for member in members]
    return {**plans[0], "targets": [observed for plan in plans for observed in plan["targets"]]}


def resource_groups(config: Config, targets: list[TargetConfig]) -> list[tuple[TargetConfig, ...]]:
    """Targets grouped by the (region, workspace, resource group) their collector runs on, in config order."""
    groups: dict[tuple[str, str | None, str | None], list[TargetConfig]] = {}
    for target in targets:
        groups.setdefault((config.region_of(target), target.workspace, target.resource_group), []).append(target)
    return [tuple(members) for members in groups.values()]


async def collect(config: Config, targets: list[TargetConfig], *, send_key: bool, deadline: float,
                  stage: Stage) -> Collected:
    """Run the collector once in every resource group at once (for all the targets on it) and shape what came
    back for the runner.

    The calls go through the run's cloud session, paced like the checks' calls, which use it afterwards.
    """
    from preflight.cloud.session import open_session

    session = open_session(config)
    collected = Collected()
    owner: Owner | CloudError | None = None
    if any(target.workspace and target.resource_group for target in targets):
        try:  # one identity for every target: the run has one set of credentials
            owner = await task_owner(config, session, config.region)
        except CloudError as exc:
            owner = exc

    async def one(members: tuple[TargetConfig, ...]) -> None:
        target = members[0]
        if not (target.workspace and target.resource_group):
            record: dict[str, Any] = {"status": "NotSubmitted",
                                      "problem": "the target needs a workspace and a resource_group"}
        elif isinstance(owner, CloudError):
            record = {"status": "NotSubmitted", "problem": f"the task's owner could not be read from STS "
                      f"GetCallerIdentity: {owner}", "code": owner.code, "auth_action": owner.auth_action,
                      "request_id": owner.request_id}
        else:
            region = config.region_of(target)

            async def call(action: str, request: Any) -> dict[str, Any]:
                return await session.call("dataworks", action, request, region, deadline=deadline + LOG_GRACE_S)

            try:
                record = await Follower(config, target, call, send_key=send_key, deadline=deadline,
                                        stage=stage, owner=owner, members=members).run()
            except CloudError as exc:
                record = {"status": "NotSubmitted", "problem": str(exc), "code": exc.code,
                          "auth_action": exc.auth_action, "request_id": exc.request_id}
        payload = record.pop("payload", None)
        if payload is not None:
            record["python"] = payload.get("python")
        if len(members) > 1:
            record["shared_with"] = [member.name for member in members]
        for member in members:
            if member.workspace and member.resource_group:
                collected.origins[member.name] = f"resource-group:{member.resource_group}"
            if payload is not None:
                collected.observations.update(payload_observations(payload, config, member))
            collected.observations[(member.name, "")] = {"probe": dict(record)}

    await asyncio.gather(*(one(members) for members in resource_groups(config, targets)))
    return collected


def ingest(log: str, config: Config, source: str) -> Collected:
    """Observations from a saved node log (the marked line), for every target of the config it names."""
    payload = decode_payload(log, source=source)
    observed = payload.get("targets")
    if not isinstance(observed, dict):
        raise LogFormatError(f"{source}: the PREFLIGHT-OBSERVATIONS payload holds no targets")
    collected = Collected()
    origin = str(payload.get("origin") or "resource-group:unknown")
    for target in config.targets:
        if target.name in observed:
            try:
                collected.observations.update(payload_observations(payload, config, target))
            except LogFormatError as exc:
                raise LogFormatError(f"{source}: {exc}") from None
            collected.origins[target.name] = origin
            key_sent = any(name in KEY_OBSERVATIONS for (owner, _), made in collected.observations.items()
                           if owner == target.name for name in made)
            collected.observations[(target.name, "")] = {"probe": {"status": "Success", "source": source,
                                                                   "key_sent": key_sent,
                                                                   "python": payload.get("python")}}
    if not collected.origins:
        names = ", ".join(sorted(str(name) for name in observed)) or "none"
        raise UsageError(f"{source}: the log observed targets {names}, none of which is in the config")
    return collected


__all__ = ["POLL_BACKOFF_S", "REGION_ZONES", "BusinessDate", "Collected", "Follower", "Owner", "business_date",
           "collect", "group_plan", "ingest", "payload_observations", "region_zone", "resource_groups", "task_owner"]
