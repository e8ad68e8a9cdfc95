"""The threaded loopback HTTP server every simulator service runs on."""

from __future__ import annotations

import http.server
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

_Job = tuple[Callable[..., object], tuple[Any, ...]] | None


class _Workers:
    """Daemon threads that serve one connection after another, made only when none is free.

    socketserver starts a new thread for every connection. Starting one (an OS thread, its Event and Condition,
    the handshake until it runs) was a large share of the simulator's CPU in a benchmark run, which opens
    hundreds of connections; the checker under test competes with that CPU for the same cores. A connection still
    gets a thread of its own for as long as it lasts (handlers sleep for latency, or stream without end), so
    nothing waits for a free thread: when none is idle, a new one starts.
    """

    def __init__(self, name: str) -> None:
        self._name = f"{name}-{id(self):x}"
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0
        self._closed = False

    def submit(self, function: Callable[..., object], *args: Any) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the server is closed")
            start = self._idle == 0
            if start:
                self._started += 1
            else:
                self._idle -= 1  # that thread takes this job (or another one, as its equal)
        self._jobs.put((function, args))
        if start:
            threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, args = job
            function(*args)
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Idle threads end now, busy ones when their connection ends."""
        with self._lock:
            self._closed = True
            threads = self._started
        for _ in range(threads):
            self._jobs.put(None)


MAX_HEADER_LINE = 65536  # what http.client allows
MAX_HEADERS = 100


class Headers:
    """A request's headers: looked up by name in any case, first occurrence wins, as email.message does."""

    __slots__ = ("_first", "_items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._first: dict[str, str] = {}
        for name, value in items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name: str, failobj: Any = None) -> list[str] | Any:
        found = [value for key, value in self._items if key.lower() == name.lower()]
        return found or failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def keys(self) -> list[str]:
        return [name for name, _ in self._items]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items)

    def __str__(self) -> str:
        return "".join(f"{name}: {value}\r\n" for name, value in self._items) + "\r\n"


class LoopbackHandler(http.server.BaseHTTPRequestHandler):
    """BaseHTTPRequestHandler with the request head read without the email package.

    The standard handler parses every request's headers with email.feedparser, and answers each lookup by
    scanning them all: in a benchmark run that was a large share of the simulator's CPU, which the
    checker under test competes with for the same cores. This reads the same head (request line, at most 100
    header lines of at most 64 KiB, obsolete line folding joined, a line that is no header ending the headers)
    and answers what the standard one does: 400 for a malformed request line, 431 for too many or too long
    header lines, 505 for HTTP/2 and later, keep-alive by version and Connection, and 100-continue.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    headers: Headers  # type: ignore[assignment]
    raw_requestline: bytes
    _date: tuple[int, str] = (0, "")

    def log_message(self, format: str, *args: Any) -> None:  # the simulator is quiet
        return None

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = LoopbackHandler._date
        if second != now:
            text = super().date_time_string(now)
            LoopbackHandler._date = (now, text)
        return text

    def answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """A whole answer in one write: what send_response, send_header and end_headers would write, then the body.

        Those write the head and the body in two system calls, and format the Date header anew each time.
        """
        if self.request_version == "HTTP/0.9":
            self.wfile.write(body)
            return
        reason = self.responses.get(status, ("",))[0]
        lines = [f"{self.protocol_version} {status} {reason}", f"Server: {self.version_string()}",
                 f"Date: {self.date_time_string()}"]
        for name, value in headers:
            lines.append(f"{name}: {value}")
            if name.lower() == "connection" and value.lower() == "close":
                self.close_connection = True
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "strict") + body)

    def parse_request(self) -> bool:
        self.command = None  # type: ignore[assignment]
        self.request_version = version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = requestline
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                major, minor = version.split("/", 1)[1].split(".")
                if len(major) > 10 or len(minor) > 10 or not (major + minor).isdigit():
                    raise ValueError
                number = int(major), int(minor)
            except ValueError:
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            if number >= (1, 1) and self.protocol_version >= "HTTP/1.1":
                self.close_connection = False
            if number >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({'.'.join(map(str, number))})")
                return False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        items: list[tuple[str, str]] = []
        ended = False  # a line that is not a header ends the headers, as for the email parser; the rest is read
        while True:
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                self.send_error(431, "Line too long", "header line")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(items) >= MAX_HEADERS:
                self.send_error(431, "Too many headers", f"got more than {MAX_HEADERS} headers")
                return False
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if ended:
                continue
            if text[:1] in (" ", "\t") and items:
                name, value = items[-1]
                items[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                ended = True
                continue
            items.append((name, value.strip()))
        self.headers = Headers(items)
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if (expect == "100-continue" and self.protocol_version >= "HTTP/1.1"
                and self.request_version >= "HTTP/1.1"):
            return self.handle_expect_100()
        return True


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that takes a client hanging up as normal, not as an error to print."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when a hundred clients connect at once, and each
    # dropped SYN costs the client a one-second retransmit: a stall no real service has.
    request_queue_size = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._workers = _Workers(type(self).__name__)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._workers.submit(self.process_request_thread, request, client_address)
        except RuntimeError:  # closing: the connection is not served
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._workers.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients give up on slow answers, huge bodies and endless streams: that is what those faults are for,
        # and socketserver would print a traceback into the output of whoever runs the simulator.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


__all__ = ["Headers", "LoopbackHandler", "LoopbackServer"]
