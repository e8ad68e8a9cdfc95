"""How a command stops: with the cloud sessions it opened closed, and quietly when its output's reader has gone."""

from __future__ import annotations

import contextlib
import os
import sys

from preflight.errors import EXIT_READER_GONE


def reader_gone() -> int:
    """Standard output's reader went away: stop quietly, as Unix tools do, instead of reporting a crash.

    Not by restoring SIGPIPE's default action: that would also kill the process when a server resets a socket.
    """
    # Later writes, and the flush at exit, go nowhere instead of failing again. A stdout a caller replaced may
    # have no descriptor to redirect.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_READER_GONE


def close_cloud_sessions() -> None:
    """Close the cloud sessions a command left open (a run that ended early, or the in-network follower's)."""
    if "preflight.cloud.session" in sys.modules:  # without importing it: most commands never need it
        sys.modules["preflight.cloud.session"].close_sessions()


__all__ = ["close_cloud_sessions", "reader_gone"]
