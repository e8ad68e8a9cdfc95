"""The local collectors: DNS, TCP and HTTP observations made from where the tool runs."""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import socket
import ssl
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from preflight.aio import within
from preflight.probe import dnsstub, wire
from preflight.probe import observations as obs
from preflight.probe.dnsstub import DnsFailure

if TYPE_CHECKING:
    from preflight.config import Config, ServiceConfig
    from preflight.context import Context, Observation

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class Endpoint:
    """The parts of a service URL a collector needs. `Endpoint.of(url)` parses each URL once per process."""

    @staticmethod
    @functools.lru_cache(maxsize=1024)
    def of(url: str) -> Endpoint:
        return Endpoint(url)

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.scheme = parts.scheme or "http"
        self.host = (parts.hostname or "").lower()
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        default = (self.scheme, self.port) in (("http", 80), ("https", 443))
        named = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal keeps its brackets
        self.host_header = named if default else f"{named}:{self.port}"


def _elapsed(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 3)


class LocalCollector:
    """Collects observations for services, with keep-alive connections per endpoint address (preflight.probe.wire).

    A request sends what a client library would by default (Accept, Accept-Encoding, User-Agent) and the name the
    service is known by, to the address the DNS check found. No cookie is kept from one check to the next, no
    redirect is followed (it is recorded), and no proxy from the environment is used: each check sees the
    endpoint's own answer.
    """

    def __init__(self, config: Config, *, verify: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.pools: dict[tuple[str, str, int, str], wire.Pool] = {}
        self._verify = verify
        self._tls: asyncio.Future[ssl.SSLContext] | None = None

    async def pool_for(self, endpoint: Endpoint, address: str) -> wire.Pool:
        """The pool for this endpoint at this address; https ones share one TLS context, loaded once."""
        key = (endpoint.scheme, address, endpoint.port, endpoint.host)
        pool = self.pools.get(key)
        if pool is None:
            tls = await self._tls_context() if endpoint.scheme == "https" else None
            pool = self.pools.get(key)  # another check may have made it meanwhile
            if pool is None:
                http = self.config.http
                pool = self.pools[key] = wire.Pool(address, endpoint.port, tls=tls, server_hostname=endpoint.host,
                                                   connect_timeout=http.connect_timeout_s,
                                                   read_timeout=http.read_timeout_s)
        return pool

    async def _tls_context(self) -> ssl.SSLContext:
        """The trust store (certifi's, or http.ca_bundle), loaded on a worker thread: 50 ms of CPU, not on the
        event loop, where it would stall every request in flight."""
        if self._verify is not None:
            return self._verify
        if self._tls is None:
            self._tls = asyncio.get_running_loop().run_in_executor(None, tls_context, self.config)
        return await asyncio.shield(self._tls)

    async def aclose(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    # --- DNS and TCP ------------------------------------------------------------------------------
    async def dns(self, service: ServiceConfig, *, deadline: float | None = None) -> Observation:
        endpoint = Endpoint.of(service.endpoint)
        observation: dict[str, Any] = obs.base("dns")
        observation.update({"host": endpoint.host, "port": endpoint.port, "resolver": "system", "answers": [],
                            "error": None, "detail": ""})
        override = self.config.dns.resolve.get(f"{endpoint.host}:{endpoint.port}")
        start = time.monotonic()
        try:
            if override is not None:
                observation["resolver"] = "override"
                observation["answers"] = [override]
            elif _is_address(endpoint.host):
                observation["resolver"] = "literal"
                observation["answers"] = [endpoint.host]
            elif self.config.dns.nameservers:
                observation["resolver"] = ",".join(self.config.dns.nameservers)
                observation["answers"] = await self._ask_nameservers(endpoint.host)
            else:
                observation["answers"] = await self._ask_system(endpoint.host, endpoint.port)
        except DnsFailure as failure:
            observation["error"], observation["detail"] = failure.kind, failure.detail
        if not observation["answers"] and observation["error"] is None:
            observation["error"], observation["detail"] = "no-answer", "the name exists but has no address"
        observation["elapsed_ms"] = _elapsed(start)
        return observation

    async def _ask_nameservers(self, host: str) -> list[str]:
        servers = [_split_host_port(entry, 53) for entry in self.config.dns.nameservers]
        return await dnsstub.resolve(host, servers, self.config.dns.timeout_s)

    async def _ask_system(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                           self.config.dns.timeout_s)
        except asyncio.TimeoutError:
            raise DnsFailure("timeout", f"no answer within {self.config.dns.timeout_s:g} s") from None
        except socket.gaierror as exc:
            kind = "nxdomain" if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)) else "error"
            raise DnsFailure(kind, f"{host}: {exc.strerror}") from None
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

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
                handshake = await within(self._connect_test(endpoint, address), timeout)
            except (asyncio.TimeoutError, wire.ConnectTimeout):
                observation.update({"error": "timeout", "detail": f"no answer to SYN within {timeout:.1f} s"})
                continue
            except (OSError, wire.ConnectError) as exc:
                cause = exc.__cause__ if isinstance(exc, wire.ConnectError) else exc
                if isinstance(cause, ConnectionRefusedError):
                    observation.update({"error": "refused", "detail": "connection refused (RST): nothing listens"})
                    continue
                errno_ = cause.errno if isinstance(cause, OSError) else None
                kind = "unreachable" if errno_ in _UNREACHABLE else "error"
                detail = (cause.strerror if isinstance(cause, OSError) else None) or str(cause or exc)
                observation.update({"error": kind, "detail": detail})
                continue
            observation.update({"connected": True, "error": None, "detail": "", "handshake_ms": handshake})
            break
        observation["elapsed_ms"] = _elapsed(start)
        return observation

    async def _connect_test(self, endpoint: Endpoint, address: str) -> float | None:
        """Open a TCP connection to the address; the kernel's handshake time (obs.handshake_ms), read at once.

        For plain http, through the endpoint's pool (wire.Pool.open_spare): the connection then carries the
        service's first request instead of being closed unused, one handshake fewer per service. For https the
        test is the TCP connect alone, as before; the pool's connections also do TLS.
        """
        handshake: float | None
        if endpoint.scheme == "http":
            handshake = obs.handshake_ms(await (await self.pool_for(endpoint, address)).open_spare())
            return handshake
        _, writer = await asyncio.open_connection(address, endpoint.port)
        handshake = obs.handshake_ms(writer.get_extra_info("socket"))
        writer.close()
        return handshake

    # --- HTTP ---------------------------------------------------------------------------------------
    def _budget(self, limit: float, deadline: float | None) -> float:
        if deadline is None:
            return limit
        return max(0.05, min(limit, deadline - time.monotonic() - 0.25))

    def _address(self, dns_obs: Observation) -> str | None:
        answers = dns_obs.get("answers") or []
        return str(answers[0]) if answers else None

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
        return await self._exchange("stream", service, dns_obs, with_key=True, deadline=deadline)

    async def _exchange(self, name: str, service: ServiceConfig, dns_obs: Observation, *, with_key: bool,
                        deadline: float | None, batch: bool = False) -> Observation:
        endpoint = Endpoint.of(service.endpoint)
        path = obs.endpoint_path(name)
        body = obs.request_body(name, service.model, service.prompt, service.max_tokens, batch)
        method = "GET" if body is None else "POST"
        display_url = f"{service.endpoint.rstrip('/')}{path}"
        observation: dict[str, Any] = obs.exchange(name, method, display_url, path, with_key and bool(service.api_key),
                                                   body)
        # What a client library sends by default, and the name the service is known by.
        headers = [("Host", endpoint.host_header), ("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"),
                   ("Connection", "keep-alive"), ("User-Agent", "dw-preflight")]
        if with_key and service.api_key:
            headers.append(("Authorization", obs.authorization(service.api_key, service.auth)))
        payload = None
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        start = time.monotonic()
        total = self._budget(self.config.http.total_timeout_s, deadline)
        stop_at = start + total
        reader = obs.SseReader(observation) if name == "stream" else None
        cap = self.config.http.max_body_bytes
        data = bytearray()
        capped = False
        response: wire.Response | None = None
        try:
            pool = await self.pool_for(endpoint, self._address(dns_obs) or endpoint.host)
            response = await within(pool.request(method, endpoint.base_path + path, headers, payload), total)
            observation.update({"status": response.status, "reason": response.reason,
                                "headers": obs.clean_headers(response.headers),
                                "content_type": response.get("content-type") or ""})
            if 300 <= response.status < 400:
                observation["redirect"] = response.get("location")

            async def read_body(answer: wire.Response) -> None:
                nonlocal capped
                async for chunk in answer.body():
                    room = cap - len(data)
                    if len(chunk) > room:
                        chunk, capped = chunk[:room], True
                    data.extend(chunk)
                    if reader is not None:
                        reader.feed(chunk, (time.monotonic() - start) * 1000)
                    if capped:
                        break

            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError
            # One deadline for the whole body, not a task per chunk: what was read before it stays in `data`.
            await within(read_body(response), remaining)
        except (asyncio.TimeoutError, wire.ConnectTimeout, wire.ReadTimeout, wire.WriteTimeout) as exc:
            observation["error"] = "timeout"
            observation["detail"] = _timeout_detail(exc, response is not None, total,
                                                    self.config.http.read_timeout_s)
            if reader is not None and observation.get("events"):
                observation["stalled"] = True
        except wire.WireError as exc:
            observation.update({"error": exc.kind, "detail": _short(exc)})
        finally:
            if response is not None:
                response.close()
        observation["elapsed_ms"] = _elapsed(start)
        if reader is not None:
            observation["total_ms"] = observation["elapsed_ms"]
            observation["capped"] = capped
            obs.finish_body(observation, bytes(data), capped, name)
            observation["json"], observation["json_error"] = None, None
        else:
            obs.finish_body(observation, bytes(data), capped, name)
        return observation


def _is_address(host: str) -> bool:
    import ipaddress

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


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def _timeout_detail(exc: BaseException, had_headers: bool, total: float, read_timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"no complete answer within the total deadline of {total:.1f} s"
    if had_headers:
        return f"the server went silent for {read_timeout:g} s in the middle of the answer"
    return _short(exc)


def tls_context(config: Config) -> ssl.SSLContext:
    """For https endpoints, verification always on: certifi's trust store, or a private CA given with
    http.ca_bundle. Plain-http endpoints (DataWorks model services are) never load it."""
    if config.http.ca_bundle:
        return ssl.create_default_context(cafile=config.http.ca_bundle)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


async def local_collector(context: Context) -> LocalCollector:
    """The run's one local collector, built on first use and closed when the run ends."""

    async def factory() -> LocalCollector:
        return LocalCollector(context.config)

    async def closer(collector: LocalCollector) -> None:
        await collector.aclose()

    return await context.resources.get("local-collector", factory, closer)


__all__ = ["Endpoint", "LocalCollector", "local_collector", "tls_context"]
