"""Ask a target's control-plane questions early, so answers are ready when the checks that need them run."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from checks.answers import (
    associated_projects,
    bindings,
    deployed,
    endpoints_in,
    get_project,
    get_resource_group,
    live,
    region_endpoints,
    zone_for,
)
from checks.judges.url import DATAWORKS_DOMAIN
from preflight.errors import CloudError

if TYPE_CHECKING:
    from preflight.config.context import CheckContext


async def warm(context: CheckContext) -> None:
    """Fire every read-only question whose parameters the config already gives, all at once.

    Each question goes through the run's memo, so the check that later asks it waits for this same request
    instead of sending another: nothing is asked twice, and the chain of round trips gets shorter. Errors stay in
    the memo for the check that asks, which reports them.
    """
    import asyncio

    from preflight.cloud.session import extra_installed
    from preflight.probe.local import Endpoint

    target = context.target
    questions: list[Awaitable[Any]] = []
    if target.workspace:
        questions.append(get_project(context))
    if target.resource_group:
        questions.append(get_resource_group(context))
        if target.workspace:
            questions.append(associated_projects(context))
            # Each node's draft, then its deployed task: the second question follows the first at once.
            questions += [deployed(context, node) for node in target.nodes]
    services = []
    for service in target.services:
        host = Endpoint.of(service.endpoint).host
        match = DATAWORKS_DOMAIN.match(host)
        if match and not service.allowed_vpcs:
            services.append(match.group("id"))
            if extra_installed("pvtz"):
                questions.append(zone_for(context, host))

    async def endpoints() -> None:
        if not services or not extra_installed("privatelink"):
            await bindings(context)
            return
        # The region's endpoints need no answer first: asked alongside the group's bindings, not after them.
        found, _ = await asyncio.gather(bindings(context), region_endpoints(context))
        alive = live(found)
        if alive:
            first_vpc = str(alive[0].get("VpcId"))
            await asyncio.gather(*(endpoints_in(context, first_vpc, service_id) for service_id in services),
                                 return_exceptions=True)

    if target.resource_group:
        questions.append(endpoints())
    with contextlib.suppress(CloudError):
        await asyncio.gather(*questions, return_exceptions=True)


__all__ = ["warm"]
