"""What every frame source is: the :class:`Source` lifecycle, the :class:`Frame` it yields, errors.

A source is a small object with one job: ``open()``, ``read() -> Frame | None`` (None at end
of stream), ``close()``, and ``interrupt()`` to cut short any waiting it does (pacing,
reconnect backoff) so that a capture thread can stop promptly. Subclasses implement
``_open``/``_read``/``_close`` and use :meth:`Source._make_frame` and :meth:`Source._pace`, so
frame indices, timestamps and real-time pacing mean the same for every kind of source.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np


class SourceError(RuntimeError):
    """A frame source cannot be opened or has failed; the message says what to try."""


class OpenStopped(SourceError):
    """``open()`` was cut short by ``interrupt()`` or its ``cancel`` event: nothing failed, the caller stopped."""


@dataclass(frozen=True, eq=False)  # eq on pixel arrays would be ambiguous; frames compare by identity
class Frame:
    """One captured image.

    ``image``: H x W x 3 uint8 BGR, C-contiguous.
    ``index``: position in the source's sequence (0, 1, ...; gaps mean frames were dropped).
    ``timestamp``: ``time.monotonic()`` seconds when the frame was captured (read).
    ``media_time_s``: seconds on the source's own clock: the position in the file or synthetic
    script (use this to sample by time when a file is read faster than real time); for cameras
    and streams, seconds since the source's first frame (the capture clock).
    ``label``: the ground-truth label (synthetic source only), else None.
    ``segment``: how many times the source had reconnected when this frame was read. Frames of
    different segments are not continuous in time, so consumers reset per-stream state when it
    changes (tied to the frame itself: polling a counter races with the capture thread).
    ``prepared``: what the capture thread made of ``image`` for its consumer
    (``CaptureThread(prepare=...)``; the Recognizer's prefetcher: the model's input), else None.
    """

    image: np.ndarray
    index: int
    timestamp: float
    media_time_s: float
    source: str
    label: str | None = None
    segment: int = 0
    prepared: np.ndarray | None = None


class Source:
    """Base class of frame sources; subclasses implement ``_open``, ``_read`` and ``_close``."""

    #: Live sources produce frames in real time whether or not anyone reads them.
    is_live: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.reconnects = 0
        self.last_error: str | None = None
        self._interrupted = threading.Event()
        self._cancel: threading.Event | None = None
        self._is_open = False
        self._next_index = 0
        self._clock_origin: float | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self, cancel: threading.Event | None = None) -> "Source":
        """Open the device/file/stream; raises :class:`SourceError` with what to try. Idempotent.

        ``cancel``: an event (a run's ``stop_event``) that, set meanwhile, makes an open that waits
        on the network return at once with :class:`OpenStopped`, as ``interrupt()`` does.
        """
        if not self._is_open:
            self._interrupted.clear()
            self._cancel = cancel
            try:
                self._open()
            finally:
                self._cancel = None
            self._is_open = True
        return self

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the stream. Opens the source if needed."""
        if not self._is_open:
            self.open()
        return self._read()

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    def interrupt(self) -> None:
        """Make pacing, reconnect waits and a network open return now (called from another thread by stop())."""
        self._interrupted.set()

    def _stopping(self) -> bool:
        """``interrupt()`` was called, or the ``cancel`` event of the open under way is set."""
        return self._interrupted.is_set() or (self._cancel is not None and self._cancel.is_set())

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- helpers for subclasses ------------------------------------------------------------
    def _make_frame(self, image: np.ndarray, media_time_s: float | None = None, label: str | None = None) -> Frame:
        now = time.monotonic()
        if media_time_s is None:  # live source: the capture clock, zero at the first frame
            if self._clock_origin is None:
                self._clock_origin = now
            media_time_s = now - self._clock_origin
        frame = Frame(np.ascontiguousarray(image), self._next_index, now, float(media_time_s), self.name, label,
                      self.reconnects)
        self._next_index += 1
        return frame

    def _pace(self, media_time_s: float) -> None:
        """Wait until ``media_time_s`` after the first paced frame (interruptible)."""
        now = time.monotonic()
        if self._clock_origin is None:
            self._clock_origin = now - media_time_s
        delay = self._clock_origin + media_time_s - now
        if delay > 0:
            self._interrupted.wait(delay)

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Frame | None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError
