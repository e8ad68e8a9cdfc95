"""The HTTP/1.1 transport under the cloud SDK's calls: a requests transport adapter with kept connections.

The SDK (darabonba) sends every signed call through a requests Session, which hands it to urllib3 and http.client.
That stack parses every answer's headers with the email package and builds four layers of objects per call: about
0.6 ms of the 1.2 ms of CPU a call costs the worker on loopback, where a 100-service run makes over two hundred
calls in one burst. The SDK still builds, signs and reads every call; this adapter only carries the bytes, the way
requests' transport adapters are meant to be swapped (`Session.mount`).

What it does: one request at a time per connection, kept open for the next call to the same scheme, host and
port (at most `pool_size` idle ones); the TLS context the SDK built for the endpoint (its trust store, its minimum
version, hostname checked); bodies framed by Content-Length, chunked or the end of the connection, gzip and
deflate decoded as requests would; 1xx answers skipped; at most 64 KiB of headers and 64 MiB of body, decoded
too (requests has no such bound: an endless answer would have filled the worker's memory). A kept connection the
server has closed is noticed before use, and a read-only call (GET) whose kept connection fails before any answer
byte is sent once more on a new one; a POST is not, since the server may have acted on it.
Errors are the requests exceptions the SDK already handles (ConnectTimeout, ReadTimeout, SSLError,
ConnectionError), with urllib3's wording for time-outs.

Anything else goes to the `fallback` adapter unchanged: a proxy (HTTP_PROXY and friends, as the SDK passes them),
a client certificate, a CA bundle path, verification switched off, a streamed response.
"""

from __future__ import annotations

import contextlib
import io
import re
import select
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import BaseAdapter
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, InvalidHeader, ReadTimeout, SSLError
from requests.models import PreparedRequest, Response
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, select_proxy

# The data plane client's bounds: 64 KiB of status line and headers, 8 KiB of a chunk-size or trailer line.

MAX_BODY = 64 * 1024 * 1024  # an API answer is kilobytes; a server that sends without end is cut here
READ = 64 * 1024
DEFAULT_TIMEOUT = (5.0, 10.0)  # the SDK's defaults, for a caller that gives none
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})  # sent again on a new connection if a kept one was stale


class _Stale(Exception):
    """A kept connection failed before any byte of an answer: the server had closed it while it was idle."""


class _Reader:
    """Buffered reads from one socket, with the head, line and exact-length reads an HTTP/1.1 answer needs."""

    __slots__ = ("buffer", "received", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.received = 0  # bytes of answers read on this connection so far

    def _more(self) -> bool:
        data = self.sock.recv(READ)
        if not data:
            return False
        self.received += len(data)
        if len(self.buffer) + len(data) > MAX_BODY + MAX_HEAD:
            raise RequestsConnectionError(f"the answer exceeds {MAX_BODY // (1024 * 1024)} MiB; it was cut there")
        self.buffer += data
        return True

    def _until(self, delimiter: bytes, limit: int, too_long: str, cut: str) -> bytes:
        """The bytes before `delimiter`, at most `limit` of them; the delimiter is read too, and dropped.

        Bounded whether the delimiter is still to come or arrived in the same read as everything before it.
        """
        while True:
            end = self.buffer.find(delimiter)
            if 0 <= end <= limit:
                found, self.buffer = self.buffer[:end], self.buffer[end + len(delimiter):]
                return found
            if end > limit or len(self.buffer) > limit:
                raise RequestsConnectionError(too_long)
            if not self._more():
                raise RequestsConnectionError(f"Connection aborted: the server closed the connection {cut}")

    def head(self) -> bytes:
        """The status line and headers, up to the blank line after them (read, and dropped, as wire's own)."""
        return self._until(b"\r\n\r\n", MAX_HEAD, f"the answer's headers exceed {MAX_HEAD} bytes",
                           "before the end of the answer's headers")

    def line(self) -> bytes:
        """A chunk-size or trailer line, without its CRLF."""
        return self._until(b"\r\n", MAX_LINE, f"a chunk-size line exceeds {MAX_LINE} bytes", "within a chunked body")

    def exactly(self, length: int) -> bytes:
        if length > MAX_BODY:
            raise RequestsConnectionError(f"the answer announces {length} bytes, more than the "
                                          f"{MAX_BODY // (1024 * 1024)} MiB an API answer may have")
        while len(self.buffer) < length:
            if not self._more():
                raise RequestsConnectionError(f"Connection aborted: the server closed the connection "
                                              f"{length - len(self.buffer)} bytes before the end of the body")
        data, self.buffer = self.buffer[:length], self.buffer[length:]
        return data

    def rest(self) -> bytes:
        while self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data


class _Connection:
    __slots__ = ("reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = _Reader(sock)

    def closed_by_peer(self) -> bool:
        """An idle kept connection is readable only when the server closed it (or sent what nobody asked)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable) or bool(self.reader.buffer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class SdkAdapter(BaseAdapter):
    """Carries the SDK's requests over kept HTTP/1.1 connections; see the module's docstring."""

    def __init__(self, fallback: BaseAdapter, *, ssl_context: ssl.SSLContext | None = None,
                 pool_size: int = 10) -> None:
        super().__init__()
        self.fallback = fallback
        self.ssl_context = ssl_context
        self.pool_size = max(1, pool_size)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def send(self, request: PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None, verify: bool | str = True,
             cert: Any = None, proxies: dict[str, str] | None = None) -> Response:
        url = str(request.url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if (stream or cert or verify is not True or (scheme == "https" and self.ssl_context is None)
                or scheme not in ("http", "https") or select_proxy(url, dict(proxies or {}))):
            return self.fallback.send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                      proxies=proxies)
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        connect_timeout, read_timeout = _timeouts(timeout)
        message = _request_bytes(request, parts.netloc)
        key = (scheme, host, port)
        for attempt in (1, 2):
            connection = self._kept(key) if attempt == 1 else None
            reused = connection is not None
            if connection is None:
                connection = self._connect(scheme, host, port, connect_timeout)
            try:
                connection.sock.settimeout(read_timeout)
                status, reason, headers, body, reusable = _exchange(connection, message, str(request.method),
                                                                    reused)
            except _Stale:
                connection.close()
                if str(request.method).upper() in IDEMPOTENT:
                    continue
                raise RequestsConnectionError("Connection aborted: the server closed a kept connection before "
                                              "answering; not sent again, as the call may have changed "
                                              "something", request=request) from None
            except TimeoutError:
                connection.close()
                raise ReadTimeout(f"HTTPConnectionPool(host='{host}', port={port}): Read timed out. "
                                  f"(read timeout={read_timeout})", request=request) from None
            except ssl.SSLError as exc:
                connection.close()
                raise SSLError(str(exc), request=request) from None
            except RequestsConnectionError:
                connection.close()
                raise
            except OSError as exc:
                connection.close()
                raise RequestsConnectionError(f"Connection aborted: {exc}", request=request) from None
            if reusable:
                self._keep(key, connection)
            else:
                connection.close()
            return _response(request, status, reason, headers, body, self)
        raise AssertionError("unreachable: the second attempt uses a new connection")

    def _kept(self, key: tuple[str, str, int]) -> _Connection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None:
                return None
            if not connection.closed_by_peer():
                return connection
            connection.close()

    def _keep(self, key: tuple[str, str, int], connection: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.pool_size:
                idle.append(connection)
                return
        connection.close()

    def _connect(self, scheme: str, host: str, port: int, timeout: float | None) -> _Connection:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError:
            raise ConnectTimeout(f"HTTPConnectionPool(host='{host}', port={port}): Max retries exceeded (Connection "
                                 f"to {host} timed out. (connect timeout={timeout}))") from None
        except OSError as exc:
            raise RequestsConnectionError(f"HTTPConnectionPool(host='{host}', port={port}): Failed to establish "
                                          f"a new connection: {exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                assert self.ssl_context is not None
                sock = self.ssl_context.wrap_socket(sock, server_hostname=host)
        except TimeoutError:
            sock.close()
            raise ConnectTimeout(f"HTTPSConnectionPool(host='{host}', port={port}): the TLS handshake timed out "
                                 f"(connect timeout={timeout})") from None
        except ssl.SSLError as exc:
            sock.close()
            raise SSLError(f"HTTPSConnectionPool(host='{host}', port={port}): {exc}") from None
        except OSError as exc:
            sock.close()
            raise RequestsConnectionError(f"Connection aborted during the TLS handshake: {exc}") from None
        return _Connection(sock)

    def close(self) -> None:
        with self._lock:
            idle = [connection for connections in self._idle.values() for connection in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()
        self.fallback.close()


def _timeouts(timeout: float | tuple[float | None, float | None] | None) -> tuple[float | None, float | None]:
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, tuple):
        return timeout[0], timeout[1]
    return timeout, timeout


def _request_bytes(request: PreparedRequest, netloc: str) -> bytes:
    lines = [f"{request.method} {request.path_url} HTTP/1.1"]
    names = set()
    for name, value in request.headers.items():
        names.add(name.lower())
        lines.append(f"{name}: {value.decode('latin-1') if isinstance(value, bytes) else value}")
    if "host" not in names:
        lines.append(f"Host: {netloc.rpartition('@')[2]}")
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, bytes):
        raise InvalidHeader("the SDK adapter sends bodies given as bytes or text only")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidHeader(f"a header is not Latin-1 text: {exc}") from None
    return head + body


def _exchange(connection: _Connection, message: bytes, method: str, reused: bool
              ) -> tuple[int, str, CaseInsensitiveDict[str], bytes, bool]:
    """Send one request and read its answer: status, reason, headers, decoded body, and whether to keep the
    connection. The head is read as the data plane's client reads it (Head, below)."""
    reader = connection.reader
    before = reader.received
    try:
        connection.sock.sendall(message)
        while True:
            head = _parsed(reader.head())
            if 100 <= head.status < 200 and head.status != 101:
                continue  # 100 Continue, 103 Early Hints: the answer follows
            break
    except (ConnectionError, RequestsConnectionError):
        if reused and reader.received == before and not reader.buffer:
            raise _Stale from None
        raise
    if head.status == 101:
        raise RequestsConnectionError("the server switched protocols (101), which an API call never asks for")
    try:
        length, chunked = head.framing(method)
    except ProtocolError as exc:
        raise RequestsConnectionError(f"Connection aborted: {exc}") from None
    keep = head.persistent()
    if chunked:
        body = _chunked(reader)
    elif length is not None:
        body = reader.exactly(length)
    else:
        body, keep = reader.rest(), False
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name in dict.fromkeys(name for name, _ in head.headers):
        headers[name] = head.get(name) or ""
    return head.status, head.reason, headers, _decoded(body, head.get("content-encoding")), keep


def _parsed(raw: bytes) -> Head:
    try:
        return Head(raw)
    except ProtocolError as exc:
        raise RequestsConnectionError(f"Connection aborted: {exc}") from None


def _chunked(reader: _Reader) -> bytes:
    pieces: list[bytes] = []
    total = 0
    while True:
        size_text = reader.line().split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise RequestsConnectionError(f"Connection aborted: invalid chunk size {size_text[:20]!r}") from None
        if size == 0:
            while reader.line():  # trailers, up to the blank line
                pass
            return b"".join(pieces)
        total += size
        if total > MAX_BODY:
            raise RequestsConnectionError(f"the chunked answer exceeds {MAX_BODY // (1024 * 1024)} MiB; it was cut "
                                          "there")
        pieces.append(reader.exactly(size))
        if reader.exactly(2) != b"\r\n":
            raise RequestsConnectionError("Connection aborted: a chunk does not end with CRLF")


def _decoded(body: bytes, content_encoding: str | None) -> bytes:
    """gzip and deflate bodies decoded (Decoder, below), to at most MAX_BODY bytes."""
    coding = (content_encoding or "").strip().lower()
    if coding not in DECODED:
        return body
    decoder = Decoder(coding)
    pieces: list[bytes] = []
    total = 0
    try:
        for piece in decoder.feed(body):
            total += len(piece)
            if total > MAX_BODY:
                raise RequestsConnectionError(f"the {coding} answer decodes to more than "
                                              f"{MAX_BODY // (1024 * 1024)} MiB; it was cut there")
            pieces.append(piece)
    except ProtocolError as exc:
        raise RequestsConnectionError(f"Received response with content-encoding: {coding}, but failed to decode "
                                      f"it: {exc}") from None
    if not decoder.finished:
        raise RequestsConnectionError(f"Received response with content-encoding: {coding}, but failed to decode "
                                      "it: the stream is truncated")
    return b"".join(pieces)


def _response(request: PreparedRequest, status: int, reason: str, headers: CaseInsensitiveDict[str], body: bytes,
              adapter: SdkAdapter) -> Response:
    response = Response()
    response.status_code = status
    response.reason = reason
    response.headers = headers
    response.encoding = get_encoding_from_headers(headers)
    response.raw = io.BytesIO(body)
    response._content = body
    response._content_consumed = True
    response.url = str(request.url)
    response.request = request
    response.connection = adapter  # type: ignore[assignment]  # the stubs name requests' own adapter
    return response


# --- The HTTP/1.1 head reader and the bounded decoder this transport shares no more (the data plane is on httpx)

MAX_HEAD = 64 * 1024  # the status line and headers of one answer
MAX_LINE = 8 * 1024  # a chunk-size or trailer line
PIECE = 64 * 1024  # the most a decompression step hands over at once

_STATUS_LINE = re.compile(r"HTTP/(\d)\.(\d) ([0-9]{3})(?: (.*))?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class ProtocolError(Exception):
    """An answer that breaks HTTP/1.1 framing or syntax."""

    kind = "protocol"


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
            flushed: bytes = self._inflate.flush()
            return flushed
        except zlib.error as exc:
            raise ProtocolError(f"the body does not decode as its Content-Encoding says: {exc}") from None


__all__ = ["SdkAdapter"]
