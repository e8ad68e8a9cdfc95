"""The run's one httpx client, on a transport that pools connections per endpoint address, port and host name."""

from __future__ import annotations

import asyncio
import ssl

# A `from` import: the SDK's background import may be loading this module at the same moment (see
# preflight/engine/redact.py).
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from preflight.config import Config

LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=8)  # per endpoint address, port and host name


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
    no_cookies = DefaultCookiePolicy(allowed_domains=[])
    return httpx.AsyncClient(
        transport=EndpointTransport(config, verify), follow_redirects=False, trust_env=False,
        cookies=CookieJar(policy=no_cookies),
        timeout=httpx.Timeout(connect=limits.connect_timeout_s, read=limits.read_timeout_s,
                              write=limits.read_timeout_s, pool=None),
        headers={"User-Agent": "dw-preflight", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"})


def tls_context(config: Config) -> ssl.SSLContext:
    """For https endpoints, verification always on: certifi's trust store, or a private CA given with
    http.ca_bundle. Plain-http endpoints (DataWorks model services are) never load it."""
    if config.http.ca_bundle:
        return ssl.create_default_context(cafile=config.http.ca_bundle)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


__all__ = ["LIMITS", "EndpointTransport", "build_client", "tls_context"]
