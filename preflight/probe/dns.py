"""The local collector's DNS observation: an override, a literal address, the configured resolvers through
dnspython, or the system resolver, by the policy both collectors share (dnswire.dns_lookup)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import TYPE_CHECKING, Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rcode
import dns.resolver

from preflight.engine.aio import within
from preflight.probe import dnswire
from preflight.probe import observations as obs
from preflight.probe.endpoint import Endpoint

if TYPE_CHECKING:
    from preflight.config import DnsConfig, ServiceConfig
    from preflight.engine.context import Observation


async def observe_dns(settings: DnsConfig, service: ServiceConfig) -> Observation:
    """The dns observation of a service's host (observations.base says its fields)."""
    endpoint = Endpoint.of(service.endpoint)
    observation: dict[str, Any] = obs.base("dns")
    observation.update({"host": endpoint.host, "port": endpoint.port, "resolver": "system", "answered_by": None,
                        "answers": [], "error": None, "detail": ""})
    override = settings.resolve.get(f"{endpoint.host}:{endpoint.port}")
    start = time.monotonic()
    if override is not None:
        observation.update({"resolver": "override", "answered_by": "override", "answers": [override]})
    elif _is_address(endpoint.host):
        observation.update({"resolver": "literal", "answered_by": "literal", "answers": [endpoint.host]})
    elif settings.nameservers:
        observation["resolver"] = ",".join(settings.nameservers)
        kind, detail, answers, answered_by = await _ask_nameservers(settings, endpoint.host)
        observation.update({"error": kind, "detail": detail, "answers": answers, "answered_by": answered_by})
    else:
        kind, detail, answers = await _ask_system(endpoint.host, endpoint.port, settings.timeout_s)
        observation.update({"error": kind, "detail": detail, "answers": answers,
                            "answered_by": "system" if answers else None})
    if not observation["answers"] and observation["error"] is None:
        observation["error"], observation["detail"] = "no-answer", "the name exists but has no address"
    observation["elapsed_ms"] = round((time.monotonic() - start) * 1000, 3)
    return observation


async def _ask_nameservers(settings: DnsConfig, host: str) -> tuple[str | None, str, list[str], str | None]:
    """The configured resolvers in turn, by the policy both collectors share (dnswire.dns_lookup)."""
    timeout = settings.timeout_s
    lookup = dnswire.dns_lookup(host, [_split_host_port(entry, 53) for entry in settings.nameservers], timeout)
    try:
        server, port = next(lookup)
        while True:
            server, port = lookup.send(await ask_resolver(host, server, port, timeout))
    except StopIteration as done:
        kind, detail, answers, answered_by = done.value
    return kind, detail, list(answers), answered_by


async def _ask_system(host: str, port: int, timeout: float) -> tuple[str | None, str, list[str]]:
    loop = asyncio.get_running_loop()
    try:
        infos = await within(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except asyncio.TimeoutError:
        return "timeout", dnswire.dns_timeout_detail(1, timeout), []
    except socket.gaierror as exc:
        kind, detail = dnswire.dns_gai_error(host, exc)
        return kind, detail, []
    return None, "", list(dict.fromkeys(str(info[4][0]) for info in infos))


async def ask_resolver(host: str, server: str, port: int, timeout: float) -> Any:
    """One resolver's answer to an A question, as dnswire.dns_lookup takes it: (rcode, addresses), "timeout", or
    the exception (OSError from the socket, ValueError for an answer that makes no sense)."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(server, port)]
    resolver.timeout = resolver.lifetime = timeout
    resolver.cache = None
    try:
        answer = await resolver.resolve(dns.name.from_text(host), "A", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return 3, []
    except dns.exception.Timeout:
        return "timeout"
    except dns.resolver.NoNameservers as exc:
        return _resolver_error(exc)
    except dns.exception.DNSException as exc:
        return ValueError(str(exc))
    return 0, sorted({str(record.address) for record in answer.rrset or ()})


def _resolver_error(exc: dns.resolver.NoNameservers) -> Any:
    """What the one resolver asked said, from dnspython's list of (server, tcp, port, error, answer)."""
    errors = exc.kwargs.get("errors") or []
    error = errors[-1][3] if errors else None
    if isinstance(error, OSError):
        return error
    if isinstance(error, str):  # the rcode's name: SERVFAIL, REFUSED, ...
        try:
            return int(dns.rcode.from_text(error)), []
        except dns.exception.DNSException:
            return ValueError(error)
    return ValueError(str(error or exc))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_host_port(entry: str, default_port: int) -> tuple[str, int]:
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry.strip("[]"), default_port


__all__ = ["ask_resolver", "observe_dns"]
