"""The `preflight` command's entry point: `--version` is answered here, without argparse or the exception tree,
and everything else goes to preflight.cli.main."""

from __future__ import annotations

import sys

# New container objects between two collections of the youngest generation (the interpreter's default is 700).
YOUNG_COLLECTION_THRESHOLD = 50_000


def console() -> None:
    """The `preflight` command and `python -m preflight`."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        from preflight import __version__

        try:
            print(f"preflight {__version__}", flush=True)
        except BrokenPipeError:  # as the command line answers a reader that went away
            from preflight.cli.exits import reader_gone

            sys.exit(reader_gone())
        return
    import atexit
    import gc

    # The interpreter's exit runs full collections over every object still alive, and a run that asked the cloud
    # holds the SDK's thousands of generated modules: none of that is garbage to find at exit. Frozen last thing
    # (atexit runs handlers in reverse order), they are left out; the other handlers, flushing and joins still run.
    atexit.register(gc.freeze)
    # A run keeps nearly everything it builds (the SDK's modules, each service's observations and results) until
    # it exits, and makes little cyclic garbage. With the default young threshold the collector walks those
    # survivors again after every few hundred new objects; this command's process collects less often instead.
    # Set here, for the process of this command only: a program that embeds the engine keeps its own policy.
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD)
    from preflight.cli.main import console as command_line

    command_line()


__all__ = ["console"]
