"""The asyncio network backend under httpx, against small loopback servers: reuse, timeouts, errors, bounds."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable

import httpcore
import httpx
import pytest

from preflight.probe.backend import HIGH_WATER, AsyncioBackend, AsyncioStream, transport

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def with_server(serve: Serve, body: Callable[[int], Awaitable[None]]) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await body(port)
    finally:
        server.close()
        await server.wait_closed()


def client(**timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), max_connections=4,
                                                 max_keepalive=2),
                             timeout=httpx.Timeout(timeouts.get("timeout", 2.0)), trust_env=False)


def test_the_transport_reaches_the_network_through_the_asyncio_backend() -> None:
    made = transport(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), max_connections=4, max_keepalive=2)
    assert isinstance(made._pool._network_backend, AsyncioBackend)


def test_a_kept_alive_connection_is_reused_and_one_the_server_closed_is_not() -> None:
    connections = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        answered = 0
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(OK)
            await writer.drain()
            answered += 1
            if answered == 2:  # then hang up, as a server does when its keep-alive expires
                writer.close()
                return

    async def body(port: int) -> None:
        async with client() as http:
            statuses = []
            for _ in range(4):
                answer = await http.get(f"http://127.0.0.1:{port}/v1/models")
                statuses.append((answer.status_code, answer.text))
                await asyncio.sleep(0.05)  # the hang-up reaches the client before its next request
            assert statuses == [(200, "ok")] * 4

    asyncio.run(with_server(serve, body))
    assert len(connections) == 2  # two requests per connection: reused once, then replaced


def test_silence_is_a_read_timeout_and_a_closed_port_a_connect_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def body(port: int) -> None:
        async with client(timeout=0.2) as http:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"http://127.0.0.1:{port}/")
            assert loop.time() - started < 1.0

    asyncio.run(with_server(serve, body))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    async def refused() -> None:
        async with client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")

    asyncio.run(refused())


def test_a_server_hanging_up_mid_body_is_a_protocol_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much")
        await writer.drain()
        writer.close()

    async def body(port: int) -> None:
        async with client() as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"http://127.0.0.1:{port}/")

    asyncio.run(with_server(serve, body))


def test_reads_are_bounded_and_end_with_an_empty_read() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"0123456789")
        await writer.drain()
        writer.close()

    async def body(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=1)
        await asyncio.sleep(0.05)
        assert await stream.read(4, timeout=1) == b"0123"
        assert await stream.read(100, timeout=1) == b"456789"
        assert await stream.read(100, timeout=1) == b""
        assert stream.get_extra_info("is_readable") is True  # a pooled connection like this is not reused
        await stream.aclose()

    asyncio.run(with_server(serve, body))


def test_a_sender_that_never_stops_fills_the_socket_not_this_process() -> None:
    chunk = b"x" * 65536

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    async def body(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=1)
        assert isinstance(stream, AsyncioStream)
        await asyncio.sleep(0.3)  # nobody reads: the backend must stop reading from the socket
        waiting = len(stream._protocol.buffer)
        assert HIGH_WATER <= waiting <= HIGH_WATER + 256 * 1024
        taken = 0
        while taken < 4 * HIGH_WATER:  # reading resumes once the buffer drains
            taken += len(await stream.read(65536, timeout=1))
        await stream.aclose()

    asyncio.run(with_server(serve, body))


def test_a_write_to_a_closed_connection_is_a_write_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def body(port: int) -> None:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=1)
        assert await stream.read(10, timeout=1) == b""
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=1)

    asyncio.run(with_server(serve, body))
