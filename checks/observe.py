"""How the built-in checks get their observations: from the resource group when there are some, else locally."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from preflight.context import Context, Observation


async def observation(context: Context, name: str) -> Observation:
    """The named observation of the context's service (memoised per run, so dependent checks share it)."""
    from preflight.probe.local import local_collector

    service = context.service
    assert service is not None, "data-plane checks are service-scoped"
    collector = await local_collector(context)
    dns = await context.observe("dns", lambda: collector.dns(service, deadline=context.deadline))
    if name == "dns":
        return dns
    if name == "tcp":
        return await context.observe("tcp", lambda: collector.tcp(service, dns, deadline=context.deadline))
    collect = getattr(collector, name)
    return await context.observe(name, lambda: collect(service, dns, deadline=context.deadline))


__all__ = ["observation"]
