"""The local collector: each observation a check asks for, made from this machine through the run's httpx client.

DNS is `probe.dns`, an HTTP exchange `probe.http`, the client `probe.client`; TCP's connect test is here.
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import TYPE_CHECKING, Any

import httpx

from preflight.engine.aio import within
from preflight.probe import observations as obs
from preflight.probe.client import EndpointTransport, build_client, tls_context
from preflight.probe.dns import ask_resolver, observe_dns
from preflight.probe.endpoint import Endpoint
from preflight.probe.http import PIECE, Decoder, exchange

if TYPE_CHECKING:
    from preflight.config import Config, ServiceConfig
    from preflight.config.context import CheckContext
    from preflight.engine.context import Observation

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class LocalCollector:
    """Collects observations for services through the client it is given (see `build_client`).

    A request goes to the address the DNS check found, with the name the service is known by in Host (and in SNI
    for https). No redirect is followed (it is recorded), and no proxy from the environment is used: each check
    sees the endpoint's own answer.
    """

    def __init__(self, config: Config, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client

    async def dns(self, service: ServiceConfig, *, deadline: float | None = None) -> Observation:
        return await observe_dns(self.config.dns, service)

    async def tcp(self, service: ServiceConfig, dns_obs: Observation, *,
                  deadline: float | None = None) -> Observation:
        endpoint = Endpoint.of(service.endpoint)
        observation: dict[str, Any] = obs.base("tcp")
        observation.update({"host": endpoint.host, "address": None, "port": endpoint.port, "connected": False,
                            "error": None, "detail": ""})
        start = time.monotonic()
        answers = list(dns_obs.get("answers") or [])
        if not answers:
            observation.update({"error": "no-address", "detail": "DNS gave no address to connect to"})
        timeout = self._budget(self.config.http.connect_timeout_s, deadline)
        for address in answers:
            observation["address"] = address
            try:
                handshake = await within(_connect_test(address, endpoint.port), timeout)
            except asyncio.TimeoutError:
                observation.update({"error": "timeout", "detail": f"no answer to SYN within {timeout:.1f} s"})
                continue
            except ConnectionRefusedError:
                observation.update({"error": "refused", "detail": "connection refused (RST): nothing listens"})
                continue
            except OSError as exc:
                kind = "unreachable" if exc.errno in _UNREACHABLE else "error"
                observation.update({"error": kind, "detail": exc.strerror or str(exc)})
                continue
            observation.update({"connected": True, "error": None, "detail": "", "handshake_ms": handshake})
            break
        observation["elapsed_ms"] = round((time.monotonic() - start) * 1000, 3)
        return observation

    def _budget(self, limit: float, deadline: float | None) -> float:
        if deadline is None:
            return limit
        return max(0.05, min(limit, deadline - time.monotonic() - 0.25))

    async def http(self, service: ServiceConfig, dns_obs: Observation, *, deadline: float | None = None
                   ) -> Observation:
        return await self._exchange("http", service, dns_obs, with_key=False, deadline=deadline)

    async def models(self, service: ServiceConfig, dns_obs: Observation, *, deadline: float | None = None
                     ) -> Observation:
        return await self._exchange("models", service, dns_obs, with_key=True, deadline=deadline)

    async def completion(self, service: ServiceConfig, dns_obs: Observation, *, deadline: float | None = None
                         ) -> Observation:
        return await self._exchange("completion", service, dns_obs, with_key=True, deadline=deadline)

    async def chat(self, service: ServiceConfig, dns_obs: Observation, *, deadline: float | None = None
                   ) -> Observation:
        return await self._exchange("chat", service, dns_obs, with_key=True, deadline=deadline)

    async def embedding(self, service: ServiceConfig, dns_obs: Observation, *, deadline: float | None = None
                        ) -> Observation:
        single, batch = await asyncio.gather(
            self._exchange("embedding", service, dns_obs, with_key=True, deadline=deadline),
            self._exchange("embedding", service, dns_obs, with_key=True, deadline=deadline, batch=True))
        batch["single"] = single
        return batch

    async def stream(self, service: ServiceConfig, dns_obs: Observation, *, deadline: float | None = None
                     ) -> Observation:
        first = await self._exchange("stream", service, dns_obs, with_key=True, deadline=deadline)
        if not obs.usage_refused(first):
            return first
        body = obs.without_usage(first["request_body"])
        again = await self._exchange("stream", service, dns_obs, with_key=True, deadline=deadline, body=body)
        again["usage_refused"] = True
        return again

    async def _exchange(self, name: str, service: ServiceConfig, dns_obs: Observation, *, with_key: bool,
                        deadline: float | None, batch: bool = False, body: dict[str, Any] | None = None
                        ) -> Observation:
        total = self._budget(self.config.http.total_timeout_s, deadline)
        return await exchange(self.client, self.config.http, name, service, dns_obs, with_key=with_key,
                              total_s=total, batch=batch, body=body)


async def _connect_test(address: str, port: int) -> float | None:
    """Open a TCP connection and close it; the kernel's handshake time (observations.handshake_ms)."""
    _, writer = await asyncio.open_connection(address, port)
    try:
        handshake: float | None = obs.handshake_ms(writer.get_extra_info("socket"))
    finally:
        writer.close()
    return handshake


async def local_collector(context: CheckContext) -> LocalCollector:
    """The run's one local collector and its httpx client, built on first use; the client is closed when the run
    ends."""

    async def factory() -> LocalCollector:
        return LocalCollector(context.config, build_client(context.config))

    async def closer(collector: LocalCollector) -> None:
        await collector.client.aclose()

    return await context.resources.get("local-collector", factory, closer)


# Endpoint, EndpointTransport, build_client, tls_context, ask_resolver, PIECE and Decoder are re-exported from
# the modules that now hold them, for the callers that import them from here.
__all__ = ["PIECE", "Decoder", "Endpoint", "EndpointTransport", "LocalCollector", "ask_resolver", "build_client",
           "local_collector", "tls_context"]
