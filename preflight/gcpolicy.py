"""How often a run collects cyclic garbage: rarely, in the main process and in the SDK worker.

The collector's youngest generation is collected every 700 new container objects. A 100-service run makes some
130,000 of them (results, observations, evidence, futures) and keeps most until its reports are written, so each
collection walks survivors it walked before, and full collections walk every module object: 120 to 190 ms of the
main process's CPU in one run, a tenth of it, and 10 to 30 ms of the worker's. A run makes little cyclic garbage
(its peak RSS is the same without any collection), so it collects every 100,000 new objects, and what existed
before it is left out of collections.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

RUN_GC_THRESHOLD = (100_000, 50, 1000)


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """Collect cyclic garbage rarely while a run goes on, then restore the interpreter's settings.

    Restored, not left as they were, because a run also goes on inside other programs (the tests, `demo`):
    objects frozen here return to the collector afterwards, and its thresholds to what they were.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*RUN_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def for_a_process_of_one_run() -> None:
    """The same threshold for a process that lives for one run (the SDK worker), for good."""
    gc.set_threshold(*RUN_GC_THRESHOLD)


__all__ = ["RUN_GC_THRESHOLD", "collecting_rarely", "for_a_process_of_one_run"]
