"""Busy processes that hog the CPU while a benchmark measures, as other work on a robot would.

Each is a plain Python busy loop in a subprocess (``while ...: pass``: no I/O, no sleep, one
core's worth of runnable work). They are started and killed by the context manager, by their
own process ids, in a ``finally``; each also ends by itself after ``max_lifetime_s``, so a
benchmark killed with SIGKILL cannot leave them spinning on a shared machine.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from typing import Iterator

_LOOP = "import time\nend = time.monotonic() + {lifetime}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def busy_processes(count: int, *, max_lifetime_s: float = 600.0, settle_s: float = 0.5) -> Iterator[list[subprocess.Popen]]:
    """``count`` busy-loop processes for the duration of the block (0: none, the block runs idle)."""
    if count < 0:
        raise ValueError(f"the number of busy processes must be >= 0, got {count}")
    if max_lifetime_s <= 0:
        raise ValueError(f"max_lifetime_s must be > 0, got {max_lifetime_s}")
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", _LOOP.format(lifetime=float(max_lifetime_s))],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if procs:
            time.sleep(settle_s)  # interpreter start-up: let them reach the loop before measuring
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in procs:
            proc.wait(timeout=10)
