"""The loopback HTTP server under every simulator service: a thread per connection while it lasts, reused after."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
import time
from collections.abc import Iterator

from preflight.simulator.server import LoopbackServer


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
def serving() -> Iterator[int]:
    """A LoopbackServer on a free port, shut down and closed on the way out."""
    server = LoopbackServer(("127.0.0.1", 0), _Handler)
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
