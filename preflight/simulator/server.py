"""The threaded loopback HTTP server every simulator service runs on."""

from __future__ import annotations

import http.server
import sys
from typing import Any


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that takes a client hanging up as normal, not as an error to print."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when a hundred clients connect at once, and each
    # dropped SYN costs the client a one-second retransmit: a stall no real service has.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients give up on slow answers, huge bodies and endless streams: that is what those faults are for,
        # and socketserver would print a traceback into the output of whoever runs the simulator.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


__all__ = ["LoopbackServer"]
