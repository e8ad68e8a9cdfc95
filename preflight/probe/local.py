"""The local collector: DNS through dnspython, TCP through asyncio, HTTP through the run's one httpx client.

Bodies are read raw and decoded here (`Decoder`), in bounded pieces: httpx inflates each compressed chunk whole,
which would let a gzip bomb past the byte cap.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import http.cookiejar
import ipaddress
import json
import socket
import ssl
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rcode
import dns.resolver
import httpx

from preflight.engine.aio import within
from preflight.probe import observations as obs

if TYPE_CHECKING:
    from preflight.config import Config, ServiceConfig
    from preflight.config.context import CheckContext
    from preflight.engine.context import Observation

_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}
PIECE = 64 * 1024  # the most a decompression step hands over at once
DECODED = ("gzip", "x-gzip", "deflate")  # the content codings asked for (Accept-Encoding) and decoded
LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=8)  # per endpoint address, port and host name


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

    def url_at(self, address: str, path: str) -> str:
        """The request URL with the resolved address in place of the name (the name goes in Host and SNI)."""
        where = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{where}:{self.port}{self.base_path}{path}"


def _elapsed(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 3)


class EndpointTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, one pool per endpoint address, port and host name.

    Requests go to an address with the service's name in Host and SNI; httpx pools by address alone, so a TLS
    connection verified for one name would otherwise carry another name's requests to the same address, and
    services behind one address (a gateway) would share one connection limit. The trust store is loaded on first
    use, on a worker thread.
    """

    def __init__(self, config: Config, verify: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._verify = verify
        self._tls: asyncio.Future[ssl.SSLContext] | None = None
        self._pools: dict[tuple[str, str, int | None, str], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # A plain-http request has no TLS name: its Host keys the pool, so services that share an address (a proxy,
        # the simulator) do not queue behind one pool's connection limit, each scanning the others' requests.
        sni = str(request.extensions.get("sni_hostname") or request.headers.get("host") or "")
        key = (request.url.scheme, request.url.host, request.url.port, sni)
        pool = self._pools.get(key)
        if pool is None:
            verify = await self._tls_context() if request.url.scheme == "https" else _NO_TLS
            pool = self._pools.setdefault(key, httpx.AsyncHTTPTransport(
                verify=verify, http1=True, http2=False, limits=LIMITS, trust_env=False, retries=0))
        return await pool.handle_async_request(request)

    async def _tls_context(self) -> ssl.SSLContext:
        if self._verify is not None:
            return self._verify
        if self._tls is None:
            self._tls = asyncio.get_running_loop().run_in_executor(None, tls_context, self.config)
        return await asyncio.shield(self._tls)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


# A plain-http pool never does TLS; if it ever did, this context (verification on, nothing trusted) would refuse.
_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def build_client(config: Config, *, verify: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """The run's HTTP client: HTTP/1.1, no redirect followed, no proxy or netrc from the environment, no cookie
    kept, and what a client library sends by default (Accept, Accept-Encoding, User-Agent)."""
    limits = config.http
    no_cookies = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
    return httpx.AsyncClient(
        transport=EndpointTransport(config, verify), follow_redirects=False, trust_env=False,
        cookies=http.cookiejar.CookieJar(policy=no_cookies),
        timeout=httpx.Timeout(connect=limits.connect_timeout_s, read=limits.read_timeout_s,
                              write=limits.read_timeout_s, pool=None),
        headers={"User-Agent": "dw-preflight", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"})


class BodyError(Exception):
    """The body is not what its Content-Encoding says, or is in a coding that cannot be decoded in bounds."""


class Decoder:
    """gzip or deflate, handed over in bounded pieces. deflate is tried with its zlib wrapper, then raw."""

    def __init__(self, encoding: str) -> None:
        self._raw_deflate_tried = encoding != "deflate"
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of `data`, at most PIECE bytes each, made only as they are taken: a caller that
        stops early (a byte cap) never holds more than one piece of a compression bomb."""
        try:
            piece = self._inflate.decompress(data, PIECE)
        except zlib.error as exc:
            if self._started or self._raw_deflate_tried:
                raise BodyError(f"the body does not decode as its Content-Encoding says: {exc}") from None
            self._raw_deflate_tried = True  # some servers send deflate without the zlib wrapper
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self.feed(data)
            return
        self._started = True
        if piece:
            yield piece
        while self._inflate.unconsumed_tail:
            piece = self._inflate.decompress(self._inflate.unconsumed_tail, PIECE)
            if piece:
                yield piece

    def flush(self) -> bytes:
        try:
            return self._inflate.flush()
        except zlib.error as exc:
            raise BodyError(f"the body does not decode as its Content-Encoding says: {exc}") from None


def decoder_for(content_encoding: str) -> Decoder | None:
    """The decoder for an answer's Content-Encoding; None for none; BodyError for one that was not asked for."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in DECODED:
        return Decoder(encoding)
    raise BodyError(f"the body is in Content-Encoding {content_encoding[:40]!r}, which was not asked for "
                    f"(Accept-Encoding: gzip, deflate)")


class _Body:
    """What an exchange has read so far: it stays when a deadline ends the reading."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.capped = False
        self.answered = False

    def take(self, chunk: bytes) -> bytes:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            chunk, self.capped = chunk[:room], True
        self.data.extend(chunk)
        return chunk


class LocalCollector:
    """Collects observations for services through the client it is given (see `build_client`).

    A request goes to the address the DNS check found, with the name the service is known by in Host (and in SNI
    for https). No redirect is followed (it is recorded), and no proxy from the environment is used: each check
    sees the endpoint's own answer.
    """

    def __init__(self, config: Config, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client

    # --- DNS and TCP ------------------------------------------------------------------------------
    async def dns(self, service: ServiceConfig, *, deadline: float | None = None) -> Observation:
        endpoint = Endpoint.of(service.endpoint)
        observation: dict[str, Any] = obs.base("dns")
        observation.update({"host": endpoint.host, "port": endpoint.port, "resolver": "system", "answered_by": None,
                            "answers": [], "error": None, "detail": ""})
        override = self.config.dns.resolve.get(f"{endpoint.host}:{endpoint.port}")
        start = time.monotonic()
        if override is not None:
            observation.update({"resolver": "override", "answered_by": "override", "answers": [override]})
        elif _is_address(endpoint.host):
            observation.update({"resolver": "literal", "answered_by": "literal", "answers": [endpoint.host]})
        elif self.config.dns.nameservers:
            observation["resolver"] = ",".join(self.config.dns.nameservers)
            kind, detail, answers, answered_by = await self._ask_nameservers(endpoint.host)
            observation.update({"error": kind, "detail": detail, "answers": answers, "answered_by": answered_by})
        else:
            kind, detail, answers = await self._ask_system(endpoint.host, endpoint.port)
            observation.update({"error": kind, "detail": detail, "answers": answers,
                                "answered_by": "system" if answers else None})
        if not observation["answers"] and observation["error"] is None:
            observation["error"], observation["detail"] = "no-answer", "the name exists but has no address"
        observation["elapsed_ms"] = _elapsed(start)
        return observation

    async def _ask_nameservers(self, host: str) -> tuple[str | None, str, list[str], str | None]:
        """The configured resolvers in turn, by the policy both collectors share (observations.dns_lookup)."""
        timeout = self.config.dns.timeout_s
        lookup = obs.dns_lookup(host, [_split_host_port(entry, 53) for entry in self.config.dns.nameservers],
                                timeout)
        try:
            server, port = next(lookup)
            while True:
                server, port = lookup.send(await ask_resolver(host, server, port, timeout))
        except StopIteration as done:
            kind, detail, answers, answered_by = done.value
        return kind, detail, list(answers), answered_by

    async def _ask_system(self, host: str, port: int) -> tuple[str | None, str, list[str]]:
        loop = asyncio.get_running_loop()
        timeout = self.config.dns.timeout_s
        try:
            infos = await within(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except asyncio.TimeoutError:
            return "timeout", obs.dns_timeout_detail(1, timeout), []
        except socket.gaierror as exc:
            kind, detail = obs.dns_gai_error(host, exc)
            return kind, detail, []
        return None, "", list(dict.fromkeys(str(info[4][0]) for info in infos))

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
        observation["elapsed_ms"] = _elapsed(start)
        return observation

    # --- HTTP ---------------------------------------------------------------------------------------
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
        endpoint = Endpoint.of(service.endpoint)
        path = obs.endpoint_path(name)
        if body is None:
            body = obs.request_body(name, service.model, service.prompt, service.max_tokens, batch)
        method = "GET" if body is None else "POST"
        observation: dict[str, Any] = obs.exchange(name, method, f"{service.endpoint.rstrip('/')}{path}", path,
                                                   with_key and bool(service.api_key), body)
        headers = {"Host": endpoint.host_header}
        if with_key and service.api_key:
            headers["Authorization"] = obs.authorization(service.api_key, service.auth)
        payload = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        answers = dns_obs.get("answers") or []
        address = str(answers[0]) if answers else endpoint.host
        extensions = {"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {}
        start = time.monotonic()
        total = self._budget(self.config.http.total_timeout_s, deadline)
        reader = obs.SseReader(observation) if name == "stream" else None
        read = _Body(self.config.http.max_body_bytes)
        try:
            request = self.client.build_request(method, endpoint.url_at(address, path), headers=headers,
                                                content=payload, extensions=extensions)
            # One deadline for the whole exchange, not one per read: what was read before it stays in `read`.
            await within(self._send(request, observation, reader, read, start), total)
        except asyncio.TimeoutError:
            observation.update({"error": "timeout",
                                "detail": f"no complete answer within the total deadline of {total:.1f} s"})
        except (httpx.HTTPError, BodyError) as exc:
            observation["error"], observation["detail"] = _failure(exc, read.answered, self.config)
        if observation["error"] == "timeout" and reader is not None and observation.get("events"):
            observation["stalled"] = True
        observation["elapsed_ms"] = _elapsed(start)
        obs.finish_body(observation, bytes(read.data), read.capped, name)
        if reader is not None:
            observation.update({"total_ms": observation["elapsed_ms"], "capped": read.capped, "json": None,
                                "json_error": None})
        return observation

    async def _send(self, request: httpx.Request, observation: dict[str, Any], reader: obs.SseReader | None,
                    read: _Body, start: float) -> None:
        response = await self.client.send(request, stream=True)
        try:
            read.answered = True
            observation.update({"status": response.status_code, "reason": response.reason_phrase,
                                "headers": obs.clean_headers(response.headers.multi_items()),
                                "content_type": response.headers.get("content-type") or ""})
            if 300 <= response.status_code < 400:
                observation["redirect"] = response.headers.get("location")
            if response.is_stream_consumed:  # an answer made in memory (httpx.MockTransport), decoded by httpx
                self._keep(read, response.content, reader, start)
                return
            decoder = decoder_for(response.headers.get("content-encoding") or "")
            async for raw in response.aiter_raw():
                for piece in decoder.feed(raw) if decoder is not None else (raw,):
                    if self._keep(read, piece, reader, start):
                        return
            tail = decoder.flush() if decoder is not None else b""
            if tail:
                self._keep(read, tail, reader, start)
        finally:
            await response.aclose()

    @staticmethod
    def _keep(read: _Body, piece: bytes, reader: obs.SseReader | None, start: float) -> bool:
        """Keep a decoded piece up to the cap; True once the cap is reached."""
        kept = read.take(piece)
        if reader is not None:
            reader.feed(kept, (time.monotonic() - start) * 1000)
        return read.capped


async def _connect_test(address: str, port: int) -> float | None:
    """Open a TCP connection and close it; the kernel's handshake time (observations.handshake_ms)."""
    _, writer = await asyncio.open_connection(address, port)
    try:
        handshake: float | None = obs.handshake_ms(writer.get_extra_info("socket"))
    finally:
        writer.close()
    return handshake


async def ask_resolver(host: str, server: str, port: int, timeout: float) -> Any:
    """One resolver's answer to an A question, as observations.dns_lookup takes it: (rcode, addresses),
    "timeout", or the exception (OSError from the socket, ValueError for an answer that makes no sense)."""
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


def _failure(exc: BaseException, answered: bool, config: Config) -> tuple[str, str]:
    """(error kind, detail) for an exchange httpx could not finish: timeout, tls, connect, reset or protocol."""
    http = config.http
    if isinstance(exc, httpx.ConnectTimeout):
        return "timeout", f"no connection within {http.connect_timeout_s:g} s"
    if isinstance(exc, httpx.ReadTimeout):
        if answered:
            return "timeout", f"the server went silent for {http.read_timeout_s:g} s in the middle of the answer"
        return "timeout", f"no answer within {http.read_timeout_s:g} s of the request"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", _short(exc)
    if isinstance(exc, httpx.LocalProtocolError):  # its message quotes the offending header, the key perhaps
        return "error", obs.HEADER_REFUSED
    cause = _root(exc)
    if isinstance(cause, ssl.SSLError):
        return "tls", _short(cause)
    if isinstance(exc, httpx.ConnectError):
        return "connect", _short(cause)
    if isinstance(cause, (ConnectionResetError, BrokenPipeError)):
        return "reset", f"the connection was reset: {_short(cause)}"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, BodyError)):
        return "protocol", _short(exc)
    return "error", _short(exc)


def _root(exc: BaseException) -> BaseException:
    """The deepest cause of an httpx error: the OSError or ssl.SSLError underneath."""
    seen = exc
    for _ in range(8):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return seen


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


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


def tls_context(config: Config) -> ssl.SSLContext:
    """For https endpoints, verification always on: certifi's trust store, or a private CA given with
    http.ca_bundle. Plain-http endpoints (DataWorks model services are) never load it."""
    if config.http.ca_bundle:
        return ssl.create_default_context(cafile=config.http.ca_bundle)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


async def local_collector(context: CheckContext) -> LocalCollector:
    """The run's one local collector and its httpx client, built on first use; the client is closed when the run
    ends."""

    async def factory() -> LocalCollector:
        return LocalCollector(context.config, build_client(context.config))

    async def closer(collector: LocalCollector) -> None:
        await collector.client.aclose()

    return await context.resources.get("local-collector", factory, closer)


__all__ = ["Endpoint", "EndpointTransport", "LocalCollector", "ask_resolver", "build_client", "local_collector",
           "tls_context"]
