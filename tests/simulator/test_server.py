"""The loopback HTTP server under every simulator service: a thread per connection while it lasts, reused after."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
import time
from collections.abc import Iterator

from preflight.simulator.server import LoopbackHandler, LoopbackServer


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.5)
        body = threading.current_thread().name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def get(port: int, path: str = "/") -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler] | None = None) -> Iterator[int]:
    """A LoopbackServer on a free port (with `handler`, else _Handler), shut down and closed on the way out."""
    server = LoopbackServer(("127.0.0.1", 0), handler or _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


def test_connections_one_after_another_reuse_one_thread() -> None:
    with serving() as port:
        names = set()
        for _ in range(20):
            names.add(get(port))
            time.sleep(0.01)  # the thread counts itself idle just after the answer is sent
    assert len(names) <= 2, names


def test_a_slow_connection_does_not_hold_up_another() -> None:
    with serving() as port:
        slow = threading.Thread(target=get, args=(port, "/slow"))
        slow.start()
        time.sleep(0.1)
        started = time.monotonic()
        fast = get(port)
        assert time.monotonic() - started < 0.3
        slow.join(2)
    assert fast


def test_closing_ends_the_idle_threads() -> None:
    answers: list[str] = []
    with serving() as port:
        callers = [threading.Thread(target=lambda: answers.append(get(port, "/slow"))) for _ in range(5)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(3)
        assert len(set(answers)) == 5  # five at once: five threads
    deadline = time.monotonic() + 2

    def serving_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name in answers]

    while serving_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not serving_threads()


class _Echo(LoopbackHandler):
    """Answers with what it read of the request's head, as JSON."""

    def do_GET(self) -> None:
        import json

        body = json.dumps({"path": self.path, "headers": self.headers.items(), "host": self.headers.get("HOST"),
                           "missing": self.headers.get("X-None"), "all": self.headers.get_all("X-Twice")}).encode()
        self.answer(200, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body)


def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.settimeout(1)
        data = b""
        with contextlib.suppress(TimeoutError):
            while piece := sock.recv(65536):
                data += piece
    return data


def test_the_request_head_is_read_as_the_standard_handler_reads_it() -> None:
    import json

    request = (b"GET //double?x=1 HTTP/1.1\r\nHost: ms-a.example\r\nX-Twice: 1\r\nx-twice: 2\r\n"
               b"X-Folded: one\r\n two\r\nConnection: close\r\n\r\n")
    with serving(_Echo) as port:
        answer = exchange(port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK" and any(line.startswith("Date: ") for line in lines)
    seen = json.loads(body)
    assert seen["path"] == "/double?x=1" and seen["host"] == "ms-a.example" and seen["missing"] is None
    assert seen["all"] == ["1", "2"] and ["X-Folded", "one two"] in seen["headers"]


def test_keep_alive_follows_the_version_and_the_connection_header() -> None:
    with serving(_Echo) as port:
        two = exchange(port, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                             b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        old = exchange(port, b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
    assert two.count(b"HTTP/1.1 200 OK") == 2  # the first kept the connection open, the second closed it
    assert old.count(b"HTTP/1.1 200 OK") == 1  # HTTP/1.0 without keep-alive: one answer, then closed


class _StandardEcho(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return None


def status_of(answer: bytes) -> str:
    """The status a raw answer carries: its status line's, or an HTTP/0.9 error page's code."""
    import re

    found = re.match(rb"HTTP/1\.1 (\d{3}) ", answer) or re.search(rb"Error code: (\d{3})", answer)
    return f"{found.group(1).decode()}{'' if answer.startswith(b'HTTP/') else ' (no status line)'}" if found else "?"


def test_a_malformed_or_oversized_head_is_refused_as_the_standard_handler_refuses_it() -> None:
    requests = [b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(101)) + b"\r\n",
                b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/x.y\r\n\r\n", b"POST /\r\n\r\n",
                b"GET / HTTP/1.1 extra\r\n\r\n"]
    with serving(_Echo) as port:
        ours = [status_of(exchange(port, request)) for request in requests]
    with serving(_StandardEcho) as port:
        standard = [status_of(exchange(port, request)) for request in requests]
    assert ours == standard
    assert ours[:4] == ["200", "431", "431", "505 (no status line)"]
