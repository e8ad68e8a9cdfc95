"""A small HTTP/1.1 client on asyncio: what the local collector needs to ask a model service, and nothing more.

The collector used httpx, through httpcore, with a network backend of its own. On loopback that cost about 1.1 ms
of CPU per request, where an asyncio protocol that writes the request and parses the answer needs about 0.2 ms
(README, Performance). A 100-service run makes some 370 requests, and its main process is busy for most of its
wall time. The collector needs little of what httpx offers: it asks one endpoint at a time, sends no cookies,
follows no redirect (it records them), uses no proxy, and speaks HTTP/1.1 to a model service.

What this client does:
- keep-alive connections, one request at a time on each, at most `limit` per pool (one pool per address, port and
  TLS name); a kept connection the server has closed in the meantime is not used, and a request whose reused
  connection fails before any byte of the answer is sent once more on a new one;
- bodies framed by Content-Length, by chunked transfer coding, or by the end of the connection; gzip and deflate
  are decoded, in pieces of at most 64 KiB, so a compressed bomb is as bounded as a plain body;
- TLS with the caller's `ssl.SSLContext` and server name;
- a deadline on every wait: connecting (TLS handshake included) within `connect_timeout`, each read and write
  within `read_timeout`; the caller bounds the whole exchange;
- a hostile server cannot make it hold much: a status line and headers over 64 KiB, a malformed status line,
  header or chunk size are a `ProtocolError`; bodies are handed over as they arrive, so the caller's cap bounds
  them; reading pauses while more than HIGH_WATER bytes wait unread, so a server sending without end fills the
  socket's buffers, not this process.

Every failure is a `WireError` whose `kind` is what the collector reports: connect, tls, timeout, reset or
protocol.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from asyncio.trsock import TransportSocket
from collections.abc import AsyncIterator, Iterator, Sequence

from preflight.aio import within

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
MAX_HEAD = 64 * 1024  # the status line and headers of one answer
MAX_LINE = 8 * 1024  # a chunk-size or trailer line
PIECE = 64 * 1024  # the most a body read or a decompression step hands over at once

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(r"HTTP/(\d)\.(\d) ([0-9]{3})(?: (.*))?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class WireError(Exception):
    """A request that got no complete answer. `kind` names the trouble the way the collector reports it;
    `before_answer` is set when the connection ended before a byte of the answer arrived."""

    kind = "error"
    before_answer = False


class ConnectError(WireError):
    kind = "connect"


class TlsError(WireError):
    kind = "tls"


class ConnectTimeout(WireError):
    kind = "timeout"


class ReadTimeout(WireError):
    kind = "timeout"


class WriteTimeout(WireError):
    kind = "timeout"


class ResetError(WireError):
    kind = "reset"


class ProtocolError(WireError):
    kind = "protocol"


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
        self._wake(self.read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        self._wake(self.read_waiter)
        return False  # close our side too: an HTTP/1.1 client has nothing to say after the server's end

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.error = exc
        self.eof = True
        self._wake(self.read_waiter)
        self._wake(self.drain_waiter)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake(self.drain_waiter)

    @staticmethod
    def _wake(waiter: asyncio.Future[bool] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def consumed(self) -> None:
        """Resume reading once the buffer is low again."""
        if self.reading_paused and len(self.buffer) <= LOW_WATER and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()


async def _wait(future: asyncio.Future[bool], timeout: float) -> bool:
    """Wait until the protocol settles `future`; False if `timeout` seconds pass first. One timer, no task."""
    timer = asyncio.get_running_loop().call_later(max(timeout, 0.0), _expire, future)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


def _lost(error: BaseException | None, what: str, *, before_answer: bool = False) -> WireError:
    """The error for a connection that ended (`error` is why, if the OS said) while `what` was expected."""
    if isinstance(error, ConnectionResetError):
        lost: WireError = ResetError(f"the connection was reset ({what})")
    elif error is not None:
        lost = ProtocolError(f"the connection broke ({what}): {error}")
    else:
        lost = ProtocolError(f"the server closed the connection ({what})")
    lost.before_answer = before_answer
    return lost


class _Connection:
    """One connection: reads with a deadline from the protocol's buffer, writes with flow control."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol, read_timeout: float) -> None:
        self.transport = transport
        self.protocol = protocol
        self.read_timeout = read_timeout
        self.reused = False

    def usable(self) -> bool:
        """A kept connection can take a request: the server has neither closed it nor sent anything unasked."""
        return not (self.protocol.eof or self.protocol.buffer or self.transport.is_closing())

    def close(self) -> None:
        self.transport.close()

    async def more(self) -> bool:
        """Wait for bytes beyond those buffered; False at the end of the stream. Raises ReadTimeout."""
        protocol = self.protocol
        if protocol.eof:
            return False
        before = len(protocol.buffer)
        waiter = protocol.read_waiter = asyncio.get_running_loop().create_future()
        try:
            if not await _wait(waiter, self.read_timeout):
                raise ReadTimeout(f"no data within {self.read_timeout:g} s")
        finally:
            protocol.read_waiter = None
        return len(protocol.buffer) > before or not protocol.eof

    async def take(self, most: int) -> bytes:
        """Up to `most` bytes, waiting for some if none are buffered; b"" at the end of the stream."""
        protocol = self.protocol
        if not protocol.buffer:
            await self.more()
        data = bytes(protocol.buffer[:most])
        del protocol.buffer[:most]
        protocol.consumed()
        if not data and protocol.error is not None:
            raise _lost(protocol.error, "while reading")
        return data

    async def line(self) -> bytes:
        """One line, its end (CRLF or LF) removed. Raises ProtocolError for a line over MAX_LINE or a lost end."""
        protocol = self.protocol
        while True:
            end = protocol.buffer.find(b"\n")
            if 0 <= end <= MAX_LINE:  # a longer line is refused even when its end came in the same read
                found = bytes(protocol.buffer[:end]).rstrip(b"\r")
                del protocol.buffer[:end + 1]
                protocol.consumed()
                return found
            if end > MAX_LINE or len(protocol.buffer) > MAX_LINE:
                raise ProtocolError(f"a line of the chunked body is longer than {MAX_LINE // 1024} KiB")
            if not await self.more():
                raise _lost(protocol.error, "in the middle of the chunked body")

    async def head(self) -> bytes:
        """The status line and headers. Raises ProtocolError past MAX_HEAD, ReadTimeout after silence."""
        protocol = self.protocol
        searched = 0
        while True:
            match = _BLANK_LINE.search(protocol.buffer, max(0, searched - 3))
            if match is not None and match.start() <= MAX_HEAD:  # a longer head is refused even if it came at once
                found = bytes(protocol.buffer[:match.start()])
                del protocol.buffer[:match.end()]
                protocol.consumed()
                return found
            if match is not None or len(protocol.buffer) > MAX_HEAD:
                raise ProtocolError(f"the answer's status line and headers exceed {MAX_HEAD // 1024} KiB")
            searched = len(protocol.buffer)
            if not await self.more():
                if protocol.buffer:
                    raise _lost(protocol.error, "in the middle of the headers")
                raise _lost(protocol.error, "without answering", before_answer=True)

    async def send(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol.error is not None or protocol.eof or self.transport.is_closing():
            raise _lost(protocol.error, "before the request was sent", before_answer=True)
        self.transport.write(data)
        if protocol.writing_paused:
            waiter = protocol.drain_waiter = asyncio.get_running_loop().create_future()
            try:
                if not await _wait(waiter, self.read_timeout):
                    raise WriteTimeout(f"could not send the request within {self.read_timeout:g} s")
            finally:
                protocol.drain_waiter = None
            if protocol.error is not None:
                raise _lost(protocol.error, "while sending the request")


class Head:
    """An answer's status line and headers, read from its head (up to the blank line): header names lower-cased,
    obsolete folded lines joined. Also read by the SDK's transport (preflight.sdk_transport)."""

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(self, head: bytes) -> None:
        lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
        while lines and not lines[-1]:
            lines.pop()  # the blank line that ends the head, when it is included
        matched = _STATUS_LINE.fullmatch(lines[0] if lines else "")
        if matched is None:
            raise ProtocolError(f"not an HTTP status line: {(lines[0] if lines else '')[:80]!r}")
        self.version = (int(matched.group(1)), int(matched.group(2)))
        self.status = int(matched.group(3))
        self.reason = (matched.group(4) or "").strip()
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:  # an obsolete folded continuation line
                name, value = self.headers[-1]
                self.headers[-1] = (name, f"{value} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            self.headers.append((name.lower(), value.strip()))

    def get(self, name: str) -> str | None:
        """The header's value; repeated headers joined with commas, as HTTP reads them."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None

    def framing(self, method: str) -> tuple[int | None, bool]:
        """(length, chunked): a known length, chunked coding, or (None, False) for the end of the connection."""
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            return 0, False
        coding = self.get("transfer-encoding")
        if coding is not None:
            return None, coding.split(",")[-1].strip().lower() == "chunked"
        length = self.get("content-length")
        if length is None:
            return None, False
        values = {value.strip() for value in length.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError(f"an invalid Content-Length: {length[:40]!r}")
        return int(values.pop()), False

    def persistent(self) -> bool:
        """Whether the server keeps the connection open after this answer (by version and Connection)."""
        tokens = {token.strip().lower() for token in (self.get("connection") or "").split(",")}
        return "keep-alive" in tokens if self.version < (1, 1) else "close" not in tokens


class Response:
    """An answer's status and headers; the body is read with `body()`, and `close()` ends the exchange."""

    def __init__(self, pool: Pool, connection: _Connection, method: str, head: bytes) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        parsed = Head(head)
        self.version, self.status, self.reason, self.headers = (parsed.version, parsed.status, parsed.reason,
                                                                parsed.headers)
        self._head = parsed
        self._length, self._chunked = parsed.framing(method)
        self._reusable = parsed.persistent() and (self._chunked or self._length is not None)
        self._finished = False

    def get(self, name: str) -> str | None:
        """The header's value; repeated headers joined with commas, as HTTP reads them."""
        return self._head.get(name)

    async def _raw(self) -> AsyncIterator[bytes]:
        """The body as sent, transfer coding removed, in pieces as they arrive."""
        connection = self._connection
        assert connection is not None
        if self._chunked:
            while True:
                size_line = await connection.line()
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"an invalid chunk size: {size_line[:40]!r}") from None
                if size == 0:
                    while await connection.line():  # trailers, up to the blank line
                        pass
                    return
                while size:
                    piece = await connection.take(min(size, PIECE))
                    if not piece:
                        raise _lost(connection.protocol.error, "in the middle of a chunk")
                    size -= len(piece)
                    yield piece
                if await connection.line():
                    raise ProtocolError("a chunk is longer than its size says")
        elif self._length is not None:
            left = self._length
            while left:
                piece = await connection.take(min(left, PIECE))
                if not piece:
                    raise _lost(connection.protocol.error, f"{left} bytes before the end of the body")
                left -= len(piece)
                yield piece
        else:
            while piece := await connection.take(PIECE):
                yield piece

    async def body(self) -> AsyncIterator[bytes]:
        """The body, decoded (gzip, deflate), in pieces of at most PIECE bytes. The caller may stop at any time."""
        encoding = (self.get("content-encoding") or "").strip().lower()
        decoder = Decoder(encoding) if encoding in DECODED else None
        async for piece in self._raw():
            if decoder is None:
                yield piece
                continue
            for decoded in decoder.feed(piece):
                yield decoded
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield tail
        self._finished = True

    def close(self) -> None:
        """End the exchange: a connection whose answer was read to its end is kept for the next request."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, self._finished and self._reusable)


DECODED = ("gzip", "x-gzip", "deflate")  # the content codings decoded (what requests and httpx decode too)


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
                raise ProtocolError(f"the body does not decode as its Content-Encoding says: {exc}") from None
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

    @property
    def finished(self) -> bool:
        """Whether the compressed stream has ended (else it was cut short)."""
        return self._inflate.eof

    def flush(self) -> bytes:
        try:
            return self._inflate.flush()
        except zlib.error as exc:
            raise ProtocolError(f"the body does not decode as its Content-Encoding says: {exc}") from None


class Pool:
    """Keep-alive connections to one address and port (and TLS server name), at most `limit` at once."""

    def __init__(self, address: str, port: int, *, tls: ssl.SSLContext | None = None, server_hostname: str = "",
                 connect_timeout: float, read_timeout: float, limit: int = 16, keep: int = 8) -> None:
        self.address = address
        self.port = port
        self.tls = tls
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keep = keep
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []
        self._opening: list[asyncio.Future[_Connection]] = []  # spares being opened that no request claimed yet
        self.opened = 0  # connections made, for tests and figures

    async def request(self, method: str, target: str, headers: Sequence[tuple[str, str]],
                      body: bytes | None = None) -> Response:
        """Send a request and read the answer's head. Waits for a free connection if `limit` are busy."""
        message = _request_bytes(method, target, headers, body)
        await self._slots.acquire()
        try:
            for attempt in (1, 2):
                connection = (self._kept() or await self._spare() if attempt == 1 else None) or await self._connect()
                try:
                    await connection.send(message)
                    response = Response(self, connection, method, await connection.head())
                    while 100 <= response.status < 200:  # 100 Continue and the like come before the answer
                        if response.status == 101:
                            raise ProtocolError("the server switched protocols (101); a model call never asks to")
                        response = Response(self, connection, method, await connection.head())
                except WireError as error:
                    connection.close()
                    # A kept connection the server closed just as it was reused: nothing was read, so ask again.
                    if attempt == 1 and connection.reused and error.before_answer:
                        continue
                    raise
                except BaseException:
                    connection.close()
                    raise
                return response
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
        except BaseException:
            self._slots.release()
            raise

    def _kept(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                connection.reused = True
                return connection
            connection.close()
        return None

    async def open_spare(self) -> TransportSocket | None:
        """Open a connection now for the next request, and return its socket (for the TCP connect test).

        A request that finds no idle connection meanwhile takes this one as it opens; otherwise it is kept idle.
        So the connect test's connection carries the endpoint's first request instead of being closed unused.
        Raises what a request's connect would (ConnectTimeout, ConnectError with the OSError as its cause).
        """
        opening: asyncio.Future[_Connection] = asyncio.get_running_loop().create_future()
        self._opening.append(opening)
        try:
            connection = await self._connect()
        except BaseException as exc:
            if opening in self._opening:
                self._opening.remove(opening)
            elif not opening.done():  # a request waits for it: it connects on its own instead
                opening.set_exception(exc if isinstance(exc, WireError) else ConnectError("the connect was cancelled"))
            raise
        if opening in self._opening or opening.done():  # nobody took it, or whoever did is gone
            if opening in self._opening:
                self._opening.remove(opening)
            if len(self._idle) < self.keep:
                self._idle.append(connection)
            else:
                connection.close()
        else:
            opening.set_result(connection)
        found: TransportSocket | None = connection.transport.get_extra_info("socket")
        return found

    async def _spare(self) -> _Connection | None:
        """The connection `open_spare` is opening, if there is one nobody took: None if there is none, or if it
        could not be made (the request then connects on its own and meets the error itself)."""
        if not self._opening:
            return None
        try:
            return await self._opening.pop(0)
        except WireError:
            return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await within(loop.create_connection(
                _Protocol, self.address, self.port, ssl=self.tls,
                server_hostname=(self.server_hostname or None) if self.tls is not None else None),
                self.connect_timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout(f"no connection within {self.connect_timeout:g} s") from None
        except ssl.SSLError as exc:
            raise TlsError(str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        self.opened += 1
        return _Connection(transport, protocol, self.read_timeout)

    def release(self, connection: _Connection, reusable: bool) -> None:
        """A response is done with its connection: keep it for the next request, or close it."""
        if reusable and connection.usable() and len(self._idle) < self.keep:
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _request_bytes(method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise WireError(f"the {name} header holds a line break")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")


__all__ = ["DECODED", "HIGH_WATER", "LOW_WATER", "MAX_HEAD", "ConnectError", "ConnectTimeout", "Decoder", "Head",
           "Pool", "ProtocolError", "ReadTimeout", "ResetError", "Response", "TlsError", "WireError", "WriteTimeout"]
