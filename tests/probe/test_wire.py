"""The collector's HTTP/1.1 client against small loopback servers: framing, reuse, timeouts, errors, bounds."""

from __future__ import annotations

import asyncio
import gzip
import socket
import zlib
from collections.abc import Awaitable, Callable

import pytest

from preflight.probe import wire

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def with_server(serve: Serve, body: Callable[[int], Awaitable[None]]) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await body(port)
    finally:
        server.close()
        await server.wait_closed()


def pool(port: int, *, read_timeout: float = 2.0, limit: int = 4) -> wire.Pool:
    return wire.Pool("127.0.0.1", port, connect_timeout=1.0, read_timeout=read_timeout, limit=limit, keep=2)


async def get(http: wire.Pool, path: str = "/v1/models") -> tuple[wire.Response, bytes]:
    response = await http.request("GET", path, [("Host", "ms-x.example")])
    try:
        return response, b"".join([piece async for piece in response.body()])
    finally:
        response.close()


def answer_once(answer: bytes, heard: list[bytes] | None = None) -> Serve:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if heard is not None:
            heard.append(head)
        writer.write(answer)
        await writer.drain()
        writer.close()

    return serve


def sending_forever(head: bytes) -> Serve:
    """A server that answers with `head` and then sends 64 KiB pieces until the client goes away."""
    piece = b"x" * 65536

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head)
        try:
            while True:
                writer.write(piece)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    return serve


def fetch(answer: bytes, **options: float) -> tuple[wire.Response, bytes]:
    async def body(port: int) -> tuple[wire.Response, bytes]:
        http = pool(port, **options)  # type: ignore[arg-type]
        try:
            return await get(http)
        finally:
            http.close()

    found: list[tuple[wire.Response, bytes]] = []

    async def run(port: int) -> None:
        found.append(await body(port))

    asyncio.run(with_server(answer_once(answer), run))
    return found[0]


def test_the_request_carries_its_headers_and_a_body_with_its_length() -> None:
    heard: list[bytes] = []

    async def body(port: int) -> None:
        http = pool(port)
        response = await http.request("POST", "/v1/completions", [("Host", "ms-x.example"), ("Authorization", "DW-k")],
                                      b'{"prompt":"hi"}')
        response.close()
        http.close()

    asyncio.run(with_server(answer_once(OK, heard), body))
    assert heard[0] == (b"POST /v1/completions HTTP/1.1\r\nHost: ms-x.example\r\nAuthorization: DW-k\r\n"
                        b"Content-Length: 15\r\n\r\n")


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def body(port: int) -> None:
        with pytest.raises(wire.WireError, match="line break"):
            await pool(port).request("GET", "/", [("Authorization", "DW-k\r\nX-Injected: 1")])

    asyncio.run(with_server(answer_once(OK), body))


@pytest.mark.parametrize(("answer", "expected"), [
    (OK, b"ok"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
     b"hello world"),
    (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),  # framed by the end of the connection
    (b"HTTP/1.1 200 OK\nContent-Length: 3\n\nbar", b"bar"),  # bare line feeds, as lenient clients read them
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", b""),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(b"zipped"))
     + gzip.compress(b"zipped"), b"zipped"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(zlib.compress(b"deflated"))
     + zlib.compress(b"deflated"), b"deflated"),
])
def test_bodies_are_framed_and_decoded(answer: bytes, expected: bytes) -> None:
    _, body = fetch(answer)
    assert body == expected


def test_status_reason_and_headers_are_read_with_repeated_headers_joined() -> None:
    response, _ = fetch(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nVia: a\r\nVIA: b\r\n"
                        b"Folded: one\r\n  two\r\nContent-Length: 0\r\n\r\n")
    assert (response.status, response.reason, response.get("location")) == (302, "Found", "http://elsewhere/")
    assert response.get("via") == "a, b" and response.get("folded") == "one two" and response.get("missing") is None


@pytest.mark.parametrize(("answer", "message"), [
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "longer than its size"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much", "bytes before the end of the body"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!", "does not decode"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "switched protocols"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * (wire.MAX_HEAD + 10), "exceed 64 KiB"),
    # Past the bounds with their ends in the same read: refused all the same.
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * (wire.MAX_HEAD + 10) + b"\r\nContent-Length: 0\r\n\r\n",
     "exceed 64 KiB"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * (wire.MAX_LINE + 10) + b"2\r\nok\r\n0\r\n\r\n",
     "longer than 8 KiB"),
    (b"HTTP/1.1 200 OK\r\nContent-", "in the middle of the headers"),
    (b"", "without answering"),
])
def test_a_broken_answer_is_a_protocol_error_that_says_what_broke(answer: bytes, message: str) -> None:
    with pytest.raises(wire.ProtocolError, match=message) as caught:
        fetch(answer)
    assert caught.value.kind == "protocol"


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
        http = pool(port)
        bodies = []
        for _ in range(4):
            bodies.append((await get(http))[1])
            await asyncio.sleep(0.05)  # the hang-up reaches the client before its next request
        http.close()
        assert bodies == [b"ok"] * 4 and http.opened == 2

    asyncio.run(with_server(serve, body))
    assert len(connections) == 2  # two requests per connection: reused once, then replaced


def test_a_reused_connection_the_server_dropped_unnoticed_is_replaced_once() -> None:
    connections = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await writer.drain()
        if len(connections) == 1:  # the first connection reads the next request, then hangs up unanswered
            await reader.readuntil(b"\r\n\r\n")
            writer.close()
            return
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(OK)
            await writer.drain()

    async def body(port: int) -> None:
        http = pool(port)
        assert (await get(http))[1] == b"ok"
        assert (await get(http))[1] == b"ok"  # sent twice: on the kept connection, then on a new one
        http.close()
        assert http.opened == 2

    asyncio.run(with_server(serve, body))


def test_connection_close_or_an_unframed_body_is_not_kept() -> None:
    async def body(port: int) -> None:
        http = pool(port)
        await get(http)
        assert not http._idle

    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    for answer in (close, b"HTTP/1.1 200 OK\r\n\r\nto the end"):
        asyncio.run(with_server(answer_once(answer), body))


def test_at_most_limit_connections_are_open_and_the_rest_wait_for_one() -> None:
    open_now, most = 0, 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.02)
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1

    async def body(port: int) -> None:
        http = pool(port, limit=3)
        answers = await asyncio.gather(*(get(http) for _ in range(12)))
        http.close()
        assert [found for _, found in answers] == [b"ok"] * 12

    asyncio.run(with_server(serve, body))
    assert most <= 3


def test_silence_is_a_read_timeout_and_a_closed_port_a_connect_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def body(port: int) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(wire.ReadTimeout, match="no data within 0.2 s"):
            await get(pool(port, read_timeout=0.2))
        assert loop.time() - started < 1.0

    asyncio.run(with_server(serve, body))
    port = closed_port()

    async def refused() -> None:
        with pytest.raises(wire.ConnectError) as caught:
            await get(pool(port))
        assert caught.value.kind == "connect"

    asyncio.run(refused())


def test_a_reset_is_a_reset() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        raw = writer.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        writer.transport.abort()

    async def body(port: int) -> None:
        with pytest.raises(wire.WireError) as caught:
            await get(pool(port))
        assert caught.value.kind in ("reset", "protocol") and "connection" in str(caught.value)

    asyncio.run(with_server(serve, body))


def test_a_body_is_handed_over_in_bounded_pieces_and_the_caller_may_stop() -> None:
    serve = sending_forever(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n")  # one endless chunk

    async def body(port: int) -> None:
        http = pool(port)
        response = await http.request("GET", "/", [])
        taken = 0
        async for piece in response.body():
            assert len(piece) <= wire.PIECE
            taken += len(piece)
            if taken > 1_000_000:
                break
        response.close()  # not read to its end: the connection is closed, not kept
        assert not http._idle

    asyncio.run(with_server(serve, body))


def test_a_compressed_bomb_is_decoded_in_bounded_pieces() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)  # 20 MB from about 20 KB
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb

    async def body(port: int) -> None:
        response = await pool(port).request("GET", "/", [])
        async for piece in response.body():
            assert len(piece) <= wire.PIECE
            break
        response.close()

    asyncio.run(with_server(answer_once(answer), body))


def test_a_sender_that_never_stops_fills_the_socket_not_this_process() -> None:
    serve = sending_forever(b"HTTP/1.1 200 OK\r\n\r\n")

    async def body(port: int) -> None:
        http = pool(port)
        response = await http.request("GET", "/", [])
        connection = response._connection
        assert connection is not None
        await asyncio.sleep(0.3)  # nobody reads: the client must stop reading from the socket
        waiting = len(connection.protocol.buffer)
        assert wire.HIGH_WATER <= waiting <= wire.HIGH_WATER + 256 * 1024
        taken = 0
        async for piece in response.body():  # reading resumes once the buffer drains
            taken += len(piece)
            if taken >= 4 * wire.HIGH_WATER:
                break
        response.close()

    asyncio.run(with_server(serve, body))


def test_a_cancelled_request_gives_its_connection_slot_back() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def body(port: int) -> None:
        http = pool(port, limit=1)
        for _ in range(3):  # each waits in the one slot, and gives it back when its deadline cancels it
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(get(http), 0.1)
        assert not http._slots.locked()

    asyncio.run(with_server(serve, body))


def test_the_decoder_makes_pieces_only_as_they_are_taken() -> None:
    """A caller that stops at its cap holds one piece of a compression bomb, not the whole of it."""
    bomb = gzip.compress(b"\0" * (64 * wire.PIECE))
    pieces = wire.Decoder("gzip").feed(bomb)
    first = next(pieces)
    assert len(first) == wire.PIECE
    decoder = wire.Decoder("gzip")
    assert sum(len(piece) for piece in decoder.feed(bomb)) == 64 * wire.PIECE and decoder.finished
    cut = wire.Decoder("gzip")
    assert b"".join(cut.feed(bomb[:-8])) and not cut.finished  # a stream cut short is seen as such


def test_a_head_is_read_with_or_without_its_blank_line() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\nConnection: close\r\n"
    for head in (raw, raw + b"\r\n"):
        parsed = wire.Head(head)
        assert (parsed.version, parsed.status, parsed.reason) == ((1, 1), 200, "OK")
        assert parsed.get("x-a") == "1, 2" and parsed.framing("GET") == (5, False) and not parsed.persistent()
    assert wire.Head(b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n").persistent()


def keep_answering(connections: list[asyncio.StreamWriter], answer: bytes = OK) -> Serve:
    """A keep-alive server that answers every request on a connection alike, and records each connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return serve


def test_a_spare_opened_for_the_connect_test_carries_the_first_request() -> None:
    """Two requests sent while the spare is still opening: the first takes the spare, the second opens its own;
    a spare nobody took waits idle for the next request."""
    connections: list[asyncio.StreamWriter] = []

    async def body(port: int) -> None:
        http = pool(port)
        spare = asyncio.ensure_future(http.open_spare())
        await asyncio.sleep(0)  # the spare is opening, as when endpoint.tcp starts before the early requests
        (_, first), (_, second) = await asyncio.gather(get(http), get(http))
        sock = await spare
        assert first == second == b"ok" and http.opened == 2
        assert sock is not None and sock.getpeername()[1] == port
        lone = pool(port)
        await lone.open_spare()
        assert len(lone._idle) == 1
        assert (await get(lone))[1] == b"ok" and lone.opened == 1
        http.close()
        lone.close()
        await asyncio.sleep(0.05)  # the server sees the connections end

    asyncio.run(with_server(keep_answering(connections), body))
    assert len(connections) == 3


def test_a_request_waiting_for_a_spare_that_fails_connects_on_its_own() -> None:
    """The request meets the error itself (here: the connect refused), not a hang or a stray exception."""
    port = closed_port()

    async def body() -> None:
        http = pool(port)
        spare = asyncio.ensure_future(http.open_spare())
        await asyncio.sleep(0)
        with pytest.raises(wire.ConnectError):
            await get(http)
        with pytest.raises(wire.ConnectError) as caught:
            await spare
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        assert not http._opening

    asyncio.run(body())


def test_a_spare_whose_taker_gave_up_is_kept_for_the_next_request() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def body(port: int) -> None:
        http = pool(port)
        spare = asyncio.ensure_future(http.open_spare())
        await asyncio.sleep(0)
        taker = asyncio.ensure_future(get(http))
        await asyncio.sleep(0)
        taker.cancel()  # a check's deadline, while the spare was still opening
        await spare
        assert taker.cancelled() and len(http._idle) == 1
        assert (await get(http))[1] == b"ok" and http.opened == 1
        http.close()
        await asyncio.sleep(0.05)

    asyncio.run(with_server(keep_answering(connections), body))
