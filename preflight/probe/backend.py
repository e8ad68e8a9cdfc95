"""httpcore's network layer written directly on asyncio, for the local collector's HTTP clients.

httpx sends through httpcore, and httpcore reaches the network through a "network backend". Its default one for
asyncio goes through anyio: every read and write opens a cancel scope with a deadline, yields to the event loop
once more as a checkpoint, and waits on the socket through anyio's own stream classes. That was a quarter of the
CPU of a 100-service run, more than HTTP parsing itself. This backend does the same job with an asyncio protocol:
bytes arrive by callback into a buffer, and a read that finds the buffer empty waits on one future with one
timer. httpcore keeps doing the HTTP: parsing, keep-alive, pooling, and the mapping of errors to httpx's.

Its streams keep httpcore's contract:
- `read` returns at most `max_bytes`, `b""` at the end of the stream, and raises `ReadTimeout` or `ReadError`;
- `write` raises `WriteTimeout` or `WriteError`; `start_tls` raises `ConnectTimeout` or `ConnectError`;
- `get_extra_info("is_readable")` is true once the peer has sent anything or hung up, which is how httpcore
  tells that a pooled keep-alive connection is no longer usable.

Reading is paused while more than `HIGH_WATER` bytes wait unread, so a server sending without end fills the
socket's buffers, not this process's memory.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    import httpx

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class _Protocol(asyncio.Protocol):
    """Collects what the peer sends and wakes the one reader or writer that waits for it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.read_waiter: asyncio.Future[bool] | None = None
        self.drain_waiter: asyncio.Future[bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close our side too: an HTTP/1.1 client has nothing to say after the server's end

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.error = exc
        self.eof = True
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self.read_waiter is not None and not self.read_waiter.done():
            self.read_waiter.set_result(True)

    def _wake_writer(self) -> None:
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(True)

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self.reading_paused and len(self.buffer) <= LOW_WATER and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return data


async def _wait(future: asyncio.Future[bool], timeout: float | None) -> bool:
    """Wait until the protocol settles `future` with True; False if `timeout` seconds pass first. One timer."""
    if timeout is None:
        return await future
    timer = asyncio.get_running_loop().call_later(max(timeout, 0.0), _expire, future)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection, as httpcore reads and writes it."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            waiter = protocol.read_waiter = asyncio.get_running_loop().create_future()
            try:
                if not await _wait(waiter, timeout):
                    raise httpcore.ReadTimeout(f"no data within {timeout:g} s" if timeout is not None else "")
            finally:
                protocol.read_waiter = None
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__) from protocol.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.error is not None or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "the connection is closed"))
        self._transport.write(buffer)
        if protocol.writing_paused:
            waiter = protocol.drain_waiter = asyncio.get_running_loop().create_future()
            try:
                if not await _wait(waiter, timeout):
                    raise httpcore.WriteTimeout(f"could not send within {timeout:g} s" if timeout is not None
                                                else "")
            finally:
                protocol.drain_waiter = None
            if protocol.error is not None:
                raise httpcore.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            secured = await asyncio.wait_for(
                loop.start_tls(self._transport, self._protocol, ssl_context, server_hostname=server_hostname),
                timeout)
        except asyncio.TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout:g} s" if timeout is not None
                                          else "") from None
        except (OSError, ssl.SSLError, EOFError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if secured is None:  # the peer closed before the handshake finished
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(secured, asyncio.Transport)
        self._protocol.transport = secured  # flow control now goes through the TLS layer
        return AsyncioStream(secured, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or self._transport.is_closing()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens connections for httpcore with asyncio's own transports."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(_Protocol, host, port, local_addr=local), timeout)
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s" if timeout is not None
                                          else "") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        _apply(transport, socket_options)  # asyncio has set TCP_NODELAY already
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await asyncio.wait_for(loop.create_unix_connection(_Protocol, path), timeout)
        except asyncio.TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s" if timeout is not None
                                          else "") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        _apply(transport, socket_options)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _apply(transport: asyncio.BaseTransport, options: Iterable[Any] | None) -> None:
    raw = transport.get_extra_info("socket")
    for option in options or ():
        raw.setsockopt(*option)


def transport(verify: ssl.SSLContext, *, max_connections: int, max_keepalive: int) -> httpx.AsyncHTTPTransport:
    """httpx's transport, with its connection pool reaching the network through AsyncioBackend.

    httpx has no parameter for httpcore's network backend, so the pool it built is replaced by an equal one
    that names this backend. A version of httpx that keeps its pool elsewhere gets its own pool: slower, the same.
    """
    import httpx

    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)
    made = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    if isinstance(getattr(made, "_pool", None), httpcore.AsyncConnectionPool):
        made._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify, max_connections=max_connections, max_keepalive_connections=max_keepalive,
            keepalive_expiry=limits.keepalive_expiry, network_backend=AsyncioBackend())
    return made


__all__ = ["HIGH_WATER", "LOW_WATER", "AsyncioBackend", "AsyncioStream", "transport"]
