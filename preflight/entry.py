"""The `preflight` command's entry point: as little as possible runs before the SDK worker starts.

The command line module imports argparse, pathlib and typing, 10 to 30 ms depending on the machine. `--version`
needs none of it, and a `run` that will ask the cloud starts its SDK worker before it (see preflight.workerproc);
everything else goes to preflight.cli.
"""

from __future__ import annotations

import sys


def cloud_likely(args_list: list[str]) -> bool:
    """Whether a command line is a `run` that will probably ask the cloud, judged before parsing it."""
    if args_list[:1] != ["run"]:
        return False
    narrowed = ("--only", "--endpoint", "--from", "-h", "--help")
    return not any(arg.split("=")[0] in narrowed for arg in args_list[1:])


def console() -> None:
    """The `preflight` command and `python -m preflight`."""
    if sys.argv[1:] in (["--version"], ["-V"]):  # what a version check asks for, without the command line's imports
        from preflight import __version__

        try:
            print(f"preflight {__version__}", flush=True)
        except BrokenPipeError:  # as the command line answers a reader that went away
            import os

            from preflight.cli import _reader_gone

            os._exit(_reader_gone())
        return
    if cloud_likely(sys.argv[1:]):
        from preflight.workerproc import launch_early

        launch_early()
    from preflight.cli import console as command_line

    command_line()


__all__ = ["cloud_likely", "console"]
