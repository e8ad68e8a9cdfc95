"""The threaded loopback HTTP server every simulator service runs on."""

from __future__ import annotations

import http.server
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

_Job = tuple[Callable[..., object], tuple[Any, ...]] | None


class _Workers:
    """Daemon threads that serve one connection after another, made only when none is free.

    socketserver starts a new thread for every connection. Starting one (an OS thread, its Event and Condition,
    the handshake until it runs) was a fifth of the simulator's CPU in a 100-service benchmark run, which opens
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


__all__ = ["LoopbackServer"]
