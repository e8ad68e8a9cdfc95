"""How the built-in checks get their observations: from the resource group when there are some, else locally."""

from __future__ import annotations

from collections.abc import Callable

from preflight.model import Outcome

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (README, Start-up)
if TYPE_CHECKING:
    from preflight.context import Context, Observation

KEYED = ("models", "completion", "stream", "chat", "embedding")


async def observation(context: Context, name: str) -> Observation:
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


def start_early(context: Context, name: str, user: str) -> None:
    """Begin the named observation now, for the check `user`, which runs after this one and will share it.

    Only for an observation that changes nothing (endpoint.http's unauthenticated GET, and auth.key_valid's GET
    when endpoint.key_goes_early says the key may go), only when `user` is part of this run, and only when observing
    from here. The user's verdict still waits for its dependencies: if this check fails, the user is blocked as
    before, and the early answer is left unread.
    """
    import asyncio

    if context.observations is not None or context.resources.checks is None or user not in context.resources.checks:
        return
    context.resources.background(asyncio.ensure_future(observation(context, name)))


async def observed(context: Context, name: str, judge: Callable[[Observation], Outcome]) -> Outcome:
    """Judge an observation; in an in-network run, say so honestly when the fallback could not reach the service."""
    result = await observation(context, name)
    fell_back = context.observations is not None and context.used_origin is None
    if fell_back and result.get("status") is None and result.get("error"):
        why = ("the key was not sent to the resource group (--send-key)" if name in KEYED
               else "the collector in the resource group did not report it")
        return Outcome.skipped(f"not observed: {why}, and the endpoint is not reachable from here "
                               f"({result.get('error')}: {result.get('detail')})")
    return judge(result)


__all__ = ["observation", "observed", "start_early"]
