"""Subprocess helpers that cannot hang a test: every read has a deadline."""

from __future__ import annotations

import queue
import subprocess
import threading
from typing import IO


class LineReader:
    """Reads a pipe on a daemon thread; :meth:`readline` waits at most ``timeout`` seconds.

    A blocking ``proc.stdout.readline()`` hangs forever when the child stops writing but does
    not exit (e.g. it ignores the signal the test sent); this raises ``TimeoutError`` instead.
    """

    def __init__(self, pipe: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[str]) -> None:
        for line in iter(pipe.readline, ""):
            self._lines.put(line)
        self._lines.put("")  # EOF

    def readline(self, timeout: float = 30.0) -> str:
        """The next line ('' at end of stream), or TimeoutError after ``timeout`` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no line from the subprocess within {timeout} s") from None

    def rest(self, timeout: float = 30.0) -> str:
        """Everything until end of stream (the process must exit within ``timeout``)."""
        out = []
        while (line := self.readline(timeout)) != "":
            out.append(line)
        return "".join(out)


def finish(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait for ``proc`` to exit; kill it (and fail) if it does not within ``timeout``."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise
