"""What every command that streams a source shares: opening it, stopping on signals, JSON lines.

``streamtsm demo``, ``streamtsm record`` and ``streamtsm triton-client`` read a
camera/file/stream/synthetic source the same way, open their windows the same way and print
the same headless JSON lines, so those pieces live here once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

logger = logging.getLogger(__name__)


class SourceArgumentError(RuntimeError):
    """The source the user named cannot be used; the message says what to do instead."""


def open_source_arg(spec: Any, kind: str, realtime: bool | None):
    from ..sources import SourceError, open_source, source_kind

    text = str(spec)
    is_synthetic = text == "synthetic" or text.startswith("synthetic:")
    is_file = kind == "video" or (kind == "source" and source_kind(text) == "file")
    options: dict[str, Any] = {}
    if realtime is not None:
        if not (is_file or is_synthetic):
            logger.warning("--realtime applies to files and the synthetic source; ignored for %s", text)
        else:
            options["realtime"] = realtime
    try:
        return open_source(spec, **options)
    except SourceError as exc:
        if kind == "default-camera":
            raise SourceArgumentError(
                f"no source given, so the demo tried camera 0, which failed: {exc}. "
                "Without a camera run: python demo.py --source synthetic (or --video FILE)"
            ) from None
        raise


class WindowError(RuntimeError):
    """No window can be shown here; the message says what to use instead."""


def open_window(title: str, instead: str = "--headless (JSON lines) / --output out.mp4 / --screenshot shot.png") -> None:
    """Open an OpenCV window called ``title``, or raise :class:`WindowError` saying what to do (``instead``)."""
    import cv2

    gui = next((ln.split(":", 1)[1].strip() for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")), "")
    if gui.upper() == "NONE":
        raise WindowError(
            "this OpenCV build has no window support (opencv-python-headless is installed): install opencv-python "
            f"for a window, or use {instead}"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise WindowError(
            f"no display ($DISPLAY is not set): use {instead}, or run under a virtual display (xvfb-run ...)"
        )
    try:
        # GUI_NORMAL: no Qt toolbar, so a window sized to the canvas shows it at 1:1
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
    except cv2.error as exc:
        raise WindowError(
            f"OpenCV could not open a window ({exc.err if hasattr(exc, 'err') else exc}): install opencv-python "
            f"for a window, or use {instead}"
        ) from None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[dict[str, int]]:
    """SIGINT/SIGTERM set ``stop`` (a second SIGINT raises KeyboardInterrupt). Yields {'signal': n}."""
    received: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        received["signal"] = signum
        received["at"] = time.monotonic()
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def rounded(value: float | None) -> float | None:
    """A rate or time for the summary line: 3 decimals (9.999999999999998 -> 10.0), None kept."""
    return None if value is None else round(value, 3)


# ------------------------------------------------------------------------------------ main



def exit_now(code: int) -> None:
    """End the process at once after a stop signal, everything already released and flushed.

    The source is closed, the video finalised and stdout flushed by now; what remains is the
    interpreter's teardown, which with torch loaded takes over a second on a busy 2-core box
    (measured 1.0-1.3 s). A process asked to stop should stop, so that teardown is skipped.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
