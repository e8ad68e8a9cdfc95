"""The local collectors: DNS, TCP and HTTP observations made from where the tool runs, with httpx."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from preflight.aio import within
from preflight.probe import dnsstub
from preflight.probe import observations as obs
from preflight.probe.dnsstub import DnsFailure

if TYPE_CHECKING:
    import httpx

    from preflight.config import Config, ServiceConfig
    from preflight.context import Context, Observation

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


class Endpoint:
    """The parts of a service URL a collector needs."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.scheme = parts.scheme or "http"
        self.host = (parts.hostname or "").lower()
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        default = (self.scheme, self.port) in (("http", 80), ("https", 443))
        self.host_header = self.host if default else f"{self.host}:{self.port}"

    def url_via(self, address: str | None, path: str) -> str:
        host = address or self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}{self.base_path}{path}"


def _elapsed(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 3)


class LocalCollector:
    """Collects observations for services, with one keep-alive connection pool per endpoint.

    One pool per endpoint rather than one for everything: httpcore looks at every pooled connection for every
    request, so a single pool serving a hundred services spends more time scanning than the network takes.

    Requests go straight to httpx's transport, not through an `httpx.AsyncClient`. The client would add
    a cookie jar carried from one check to the next, redirect and auth machinery that is switched off here,
    and the merging of base URL, headers and defaults on every request: about a tenth of a request's CPU, and
    cookies one check's server set would reach the next check. What the client would send by default, the
    request here sends itself.
    """

    def __init__(self, config: Config, transport_factory: Callable[[], httpx.AsyncBaseTransport] | None = None, *,
                 verify: ssl.SSLContext | None = None, setup: Setup | None = None) -> None:
        self.config = config
        self.transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._factory = transport_factory
        self._verify = verify
        self._setup = setup
        self._timeouts: dict[str, float | None] | None = None
        self._urls: dict[str, httpx.URL] = {}  # a few per service: its address and the paths asked

    def transport_for(self, endpoint: Endpoint) -> httpx.AsyncBaseTransport:
        key = f"{endpoint.scheme}://{endpoint.host}:{endpoint.port}"
        transport = self.transports.get(key)
        if transport is None:
            if self._factory is None:
                verify = self._verify or tls_context(self.config)  # one trust store for every pool
                self._factory = lambda: build_transport(verify)
            transport = self.transports[key] = self._factory()
        return transport

    def _url(self, text: str) -> httpx.URL:
        """The parsed URL, parsed once: httpx parses a URL string in Python, half of building a request."""
        import httpx

        url = self._urls.get(text)
        if url is None:
            url = self._urls[text] = httpx.URL(text)
        return url

    def timeouts(self) -> dict[str, float | None]:
        """Per-phase limits, as httpcore reads them from a request: connect, read, write, and the pool wait."""
        if self._timeouts is None:
            http = self.config.http
            self._timeouts = {"connect": http.connect_timeout_s, "read": http.read_timeout_s,
                              "write": http.read_timeout_s, "pool": http.total_timeout_s}
        return self._timeouts

    async def aclose(self) -> None:
        for transport in self.transports.values():
            await transport.aclose()
        self.transports.clear()

    # --- DNS and TCP ------------------------------------------------------------------------------
    async def dns(self, service: ServiceConfig, *, deadline: float | None = None) -> Observation:
        endpoint = Endpoint(service.endpoint)
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
        endpoint = Endpoint(service.endpoint)
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
                _, writer = await asyncio.wait_for(asyncio.open_connection(address, endpoint.port), timeout)
            except asyncio.TimeoutError:
                observation.update({"error": "timeout", "detail": f"no answer to SYN within {timeout:.1f} s"})
                continue
            except ConnectionRefusedError:
                observation.update({"error": "refused", "detail": "connection refused (RST): nothing listens"})
                continue
            except OSError as exc:
                kind = "unreachable" if exc.errno in _UNREACHABLE else "error"
                observation.update({"error": kind, "detail": f"{exc.strerror or exc}"})
                continue
            observation.update({"connected": True, "error": None, "detail": "",
                                "handshake_ms": obs.handshake_ms(writer.get_extra_info("socket"))})
            writer.close()
            break
        observation["elapsed_ms"] = _elapsed(start)
        return observation

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
        if self._setup is not None and self._verify is None:
            self._verify = await asyncio.shield(self._setup.http)
        import httpx

        endpoint = Endpoint(service.endpoint)
        path = obs.endpoint_path(name)
        body = obs.request_body(name, service.model, service.prompt, service.max_tokens, batch)
        method = "GET" if body is None else "POST"
        display_url = f"{service.endpoint.rstrip('/')}{path}"
        observation: dict[str, Any] = obs.exchange(name, method, display_url, path, with_key and bool(service.api_key),
                                                   body)
        # What httpx's client sends by default, and the name the service is known by.
        headers = {"Host": endpoint.host_header, "Accept": "*/*", "Accept-Encoding": "gzip, deflate",
                   "Connection": "keep-alive", "User-Agent": "dw-preflight"}
        if with_key and service.api_key:
            headers["Authorization"] = obs.authorization(service.api_key, service.auth)
        transport = self.transport_for(endpoint)
        request = httpx.Request(method, self._url(endpoint.url_via(self._address(dns_obs), path)), headers=headers,
                                json=body, extensions={"sni_hostname": endpoint.host, "timeout": self.timeouts()})
        start = time.monotonic()
        total = self._budget(self.config.http.total_timeout_s, deadline)
        stop_at = start + total
        reader = obs.SseReader(observation) if name == "stream" else None
        cap = self.config.http.max_body_bytes
        data = bytearray()
        capped = False
        response: httpx.Response | None = None
        try:
            response = await within(transport.handle_async_request(request), total)
            observation.update({"status": response.status_code, "reason": response.reason_phrase,
                                "headers": obs.clean_headers(response.headers.multi_items()),
                                "content_type": response.headers.get("content-type", "")})
            if 300 <= response.status_code < 400:
                observation["redirect"] = response.headers.get("location")

            async def read_body(answer: httpx.Response) -> None:
                nonlocal capped
                async for chunk in answer.aiter_bytes():
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
        except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
            observation["error"] = "timeout"
            observation["detail"] = _timeout_detail(exc, response is not None, total,
                                                    self.config.http.read_timeout_s)
            if reader is not None and observation.get("events"):
                observation["stalled"] = True
        except httpx.ConnectError as exc:
            tls = isinstance(exc.__context__, ssl.SSLError) or "CERTIFICATE" in str(exc).upper()
            observation.update({"error": "tls" if tls else "connect", "detail": _short(exc)})
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            reset = isinstance(exc.__context__, ConnectionResetError) or "reset" in str(exc).lower()
            observation.update({"error": "reset" if reset else "protocol", "detail": _short(exc)})
        except httpx.HTTPError as exc:
            observation.update({"error": "error", "detail": _short(exc)})
        finally:
            if response is not None:
                await response.aclose()
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
    """Verification always on: certifi's trust store, or a private CA given with http.ca_bundle.

    A config with no https endpoint gets a verifying context with no trust store at all: its clients never
    speak TLS (each serves one http endpoint and follows no redirect), and loading the store costs 50 ms.
    """
    if config.http.ca_bundle:
        return ssl.create_default_context(cafile=config.http.ca_bundle)
    if not any(Endpoint(service.endpoint).scheme == "https" for target in config.targets
               for service in target.services):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and so trusts nothing
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def prepare_http(config: Config) -> ssl.SSLContext:
    """httpx's imports, the ones its first request would otherwise make on the event loop, and the trust store."""
    import anyio._backends._asyncio  # noqa: F401  (anyio imports its backend at the first request)
    import httpcore  # noqa: F401
    import httpx  # noqa: F401

    return tls_context(config)


class Setup:
    """httpx's imports and the trust store (about 120 ms of CPU), made on a worker thread when the run starts.

    Not on the event loop: there it would stall every connect and request in flight, and the stall would be
    reported as their network time. Only the HTTP checks wait for it; DNS and TCP need none of it.
    """

    def __init__(self, config: Config) -> None:
        self.http: asyncio.Future[ssl.SSLContext] = asyncio.get_running_loop().run_in_executor(
            None, prepare_http, config)
        # A run that makes no request must not log "exception was never retrieved".
        self.http.add_done_callback(lambda done: done.cancelled() or done.exception())


def build_transport(verify: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    """The transport for one endpoint: keep-alive, verification on, no proxy from the environment."""
    from preflight.probe.backend import transport

    return transport(verify, max_connections=16, max_keepalive=8)


async def local_collector(context: Context) -> LocalCollector:
    """The run's one local collector, built on first use and closed when the run ends."""

    async def factory() -> LocalCollector:
        return LocalCollector(context.config, setup=Setup(context.config))

    async def closer(collector: LocalCollector) -> None:
        await collector.aclose()

    return await context.resources.get("local-collector", factory, closer)


__all__ = ["Endpoint", "LocalCollector", "Setup", "build_transport", "local_collector", "prepare_http",
           "tls_context"]
