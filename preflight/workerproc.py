"""The SDK worker's process, started before the command line imports anything else.

The worker (preflight.cloud_worker) needs about a third of a second to import the SDK, and in a run of one service
that import is on the critical path: the first signed call waits for it. So the command line starts the process
first of all, with nothing imported but `subprocess`, and the run adopts it later as a CloudWorker. Importing what
CloudWorker itself needs first (dataclasses, concurrent.futures, json, the cloud module) put the start about 40 ms
later.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# Set to 0 to make the SDK calls in the main process instead (for a debugger, or a platform without subprocesses).
ENV_SWITCH = "PREFLIGHT_CLOUD_WORKER"

_EARLY: list[subprocess.Popen[bytes]] = []


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def launch(argv: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start a worker process (or `argv` instead, for tests), talking over its standard streams."""
    return subprocess.Popen(argv or [sys.executable, "-m", "preflight.cloud_worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)


def launch_early() -> None:
    """Start the worker now, for a run that will probably ask the cloud; `take()` hands it over."""
    if not _EARLY and enabled():
        with contextlib.suppress(OSError):  # then the run starts one itself, or imports the SDK in a thread
            _EARLY.append(launch())


def take() -> subprocess.Popen[bytes] | None:
    """The process `launch_early` started, once; None if there is none."""
    return _EARLY.pop() if _EARLY else None


def discard() -> None:
    """Stop an early process nobody took (a command that turned out to need no cloud)."""
    while _EARLY:
        process = _EARLY.pop()
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if process.poll() is None:
            process.kill()
        process.wait()


__all__ = ["ENV_SWITCH", "discard", "enabled", "launch", "launch_early", "take"]
