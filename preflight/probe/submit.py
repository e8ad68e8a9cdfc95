"""Run the in-network collector on every resource group of the targets at once, and gather what came back."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from preflight.cloud.session import open_session
from preflight.errors import CloudError
from preflight.probe.bizdate import REGION_ZONES, BusinessDate, business_date, region_zone
from preflight.probe.follow import LOG_GRACE_S, POLL_BACKOFF_S, Follower, Stage
from preflight.probe.owner import Owner, task_owner
from preflight.probe.payload import Collected, ingest, payload_observations
from preflight.probe.script import group_plan

if TYPE_CHECKING:
    from preflight.config import Config, TargetConfig


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


# Re-exported from the modules that now hold them, for the callers that import them from here.
__all__ = ["POLL_BACKOFF_S", "REGION_ZONES", "BusinessDate", "Collected", "Follower", "Owner", "business_date",
           "collect", "group_plan", "ingest", "payload_observations", "region_zone", "resource_groups", "task_owner"]
