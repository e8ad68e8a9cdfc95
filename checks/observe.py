"""How the built-in checks get their observations: from the resource group when there are some, else locally."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from preflight.engine.model import Outcome

if TYPE_CHECKING:
    from preflight.config.context import CheckContext
    from preflight.engine.context import Observation

KEYED = ("models", "completion", "stream", "chat", "embedding")


async def observation(context: CheckContext, name: str) -> Observation:
    """The named observation of the context's service (memoised per run, so dependent checks share it).

    In an in-network run, an observation the collector did not make (no --send-key) is made here instead,
    with this machine's own DNS answer: the resource group's private address means nothing from here.
    """
    from preflight.probe.local import local_collector

    service = context.service
    assert service is not None, "data-plane checks are service-scoped"
    collector = await local_collector(context)
    in_network = context.observations is not None
    if in_network and name not in (context.observations or {}):
        key = ("local-dns", context.target.name, service.name)
        dns = await context.resources.shared(key, lambda: collector.dns(service, deadline=context.deadline))
    else:
        dns = await context.observe("dns", lambda: collector.dns(service, deadline=context.deadline))
    if name == "dns":
        return dns
    if name == "tcp":
        return await context.observe("tcp", lambda: collector.tcp(service, dns, deadline=context.deadline))
    collect = getattr(collector, name)
    return await context.observe(name, lambda: collect(service, dns, deadline=context.deadline))


async def observed(context: CheckContext, name: str, judge: Callable[[Observation], Outcome]) -> Outcome:
    """Judge an observation; in an in-network run, say so honestly when the fallback could not reach the service."""
    result = await observation(context, name)
    fell_back = context.observations is not None and context.used_origin is None
    if fell_back and result.get("status") is None and result.get("error"):
        why = ("the key was not sent to the resource group (--send-key)" if name in KEYED
               else "the collector in the resource group did not report it")
        return Outcome.skipped(f"not observed: {why}, and the endpoint is not reachable from here "
                               f"({result.get('error')}: {result.get('detail')})")
    return judge(result)


__all__ = ["observation", "observed"]
