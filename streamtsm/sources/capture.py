"""The capture thread: reads one source continuously and hands frames to one consumer.

Why a thread per source: a camera produces frames at its own pace whether or not the model
keeps up. Reading in the inference loop would let frames pile up in the driver's queue, so the
model would see the past with ever growing latency. For live sources the thread keeps only the
newest frame (older ones are dropped and counted); for files it delivers every frame and blocks
the reader when the consumer falls behind (backpressure), because a file has no "now" to keep
up with.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .base import Frame, Source, SourceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of a :class:`CaptureThread`'s counters.

    Always ``frames_read == delivered + dropped + buffered + skipped``: a frame counts as read
    once it is handed on (a frame a queue-fed reader holds while blocked, or drops because it was
    stopped, is not counted). ``skipped``: frames the model would not take, never handed over
    (``skip_unprepared=True`` only); ``dropped``: frames replaced by a newer one unread.
    """

    source: str
    frames_read: int
    delivered: int
    dropped: int
    buffered: int
    reconnects: int
    last_error: str | None
    running: bool
    skipped: int = 0


_STOP_JOIN_S = 0.75


class CaptureThread:
    """Reads a source on its own thread and hands frames to one consumer.

    Live sources (``source.is_live``): a one-slot buffer where the newest frame replaces an
    unread one (counted in ``stats.dropped``). Other sources: a bounded queue of
    ``queue_size`` frames; the reader blocks when it is full, so every frame is delivered.
    ``latest_only`` overrides the choice.

    :meth:`get` returns the next frame, ``None`` at the end of the stream (or after
    :meth:`stop`), and raises :class:`SourceError` (with the original exception as
    ``__cause__``) if the source failed; the error stays raised on later calls, so it cannot be
    lost. :meth:`stop` returns within about a second even if the source is stuck in a read: the
    thread is a daemon and closes the source itself when the read returns.

    ``prepare(frame)``: work done here, on the capture thread, for each frame before it is
    handed over (the Recognizer resizes the frames its model will take, off the critical path);
    its result becomes ``frame.prepared`` (an exception leaves the frame unprepared, for the
    consumer to prepare and report). None means the model will skip the frame: it is handed
    over unprepared, or, with ``skip_unprepared=True``, not at all (counted in
    ``stats.skipped``) -- a consumer that only wants predictions then never touches the
    two of three camera frames a 10 fps model skips, and a live buffer never replaces a frame
    the model wants with one it does not.
    ``on_frame()``: called after each frame is buffered, and once when the source ends or fails
    (a consumer of several threads waits on it, and must learn of an end without a last frame).
    """

    def __init__(self, source: Source, *, latest_only: bool | None = None, queue_size: int = 8,
                 prepare: Callable[[Frame], np.ndarray | None] | None = None,
                 on_frame: Callable[[], None] | None = None, skip_unprepared: bool = False) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if skip_unprepared and prepare is None:
            raise ValueError("skip_unprepared=True needs prepare= (it says which frames the consumer will skip)")
        self.source = source
        self.prepare, self._on_frame = prepare, on_frame  # prepare: read by consumers (a prefetcher's rates)
        self.skip_unprepared = skip_unprepared
        self.latest_only = source.is_live if latest_only is None else latest_only
        self._capacity = 1 if self.latest_only else queue_size
        self._buffer: collections.deque[Frame] = collections.deque()
        self._cond = threading.Condition()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._frames_read = 0
        self._delivered = 0
        self._dropped = 0
        self._skipped = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, cancel: threading.Event | None = None) -> "CaptureThread":
        """Open the source (errors raise here, in the caller's thread) and start reading.

        ``cancel``: set meanwhile (a run's stop event), it cuts a network open short (``OpenStopped``)."""
        if self._thread is not None:
            return self
        self.source.open(cancel)
        self._thread = threading.Thread(target=self._run, name=f"capture[{self.source.name}]", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = _STOP_JOIN_S) -> bool:
        """Stop reading; returns True if the thread ended within ``timeout`` seconds."""
        self._stop_event.set()
        self.source.interrupt()
        with self._cond:
            self._cond.notify_all()
        if self._thread is None:
            self.source.close()
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning(
                "capture thread for %s is still blocked in a read; it will close the source when the read returns",
                self.source.name,
            )
            return False
        return True

    def __enter__(self) -> "CaptureThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- producer side (capture thread) ----------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop_event.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if self.prepare is not None:
                    frame = self._prepared(frame)
                    if frame is None:  # the consumer would skip it (skip_unprepared)
                        continue
                self._push(frame)
                if self._on_frame is not None:
                    self._on_frame()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, never lost
            logger.error("capture from %s failed: %r", self.source.name, exc)
            self.source.last_error = f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()
            if self._on_frame is not None:  # the end (or the failure) is news for the consumer too
                try:
                    self._on_frame()
                except Exception:  # noqa: BLE001
                    logger.exception("on_frame callback failed at the end of %s", self.source.name)
            try:
                self.source.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                logger.exception("closing %s failed", self.source.name)

    def _prepared(self, frame: Frame) -> Frame | None:
        """The frame with its prepared patch; None when it is to be skipped here."""
        try:
            patch = self.prepare(frame)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the consumer prepares (and reports) the frame itself
            logger.debug("capture-side preparation of frame %d failed: %r", frame.index, exc)
            return frame
        if patch is not None:
            return dataclasses.replace(frame, prepared=patch)
        if self.skip_unprepared:
            with self._cond:
                self._frames_read += 1
                self._skipped += 1
            return None
        return frame

    def _push(self, frame: Frame) -> None:
        with self._cond:
            if self.latest_only:
                if len(self._buffer) >= self._capacity:
                    self._buffer.popleft()
                    self._dropped += 1
            else:
                while len(self._buffer) >= self._capacity and not self._stop_event.is_set():
                    self._cond.wait()
                if self._stop_event.is_set():
                    return  # stopping: not handed over, so not counted (the counters stay balanced)
            self._frames_read += 1
            self._buffer.append(frame)
            self._cond.notify_all()

    # -- consumer side ---------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Frames read and not yet taken (at most 1 for a live source)."""
        with self._cond:
            return len(self._buffer)

    @property
    def ready(self) -> bool:
        """Whether :meth:`get` would return at once: a frame is waiting, or the source ended or failed."""
        with self._cond:
            return bool(self._buffer) or self._finished or self._error is not None or self._stop_event.is_set()

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame; None at end of stream or after stop(). Raises TimeoutError after ``timeout`` s."""
        if self._thread is None:
            raise RuntimeError("CaptureThread not started: call start() or use it as a context manager")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stop_event.is_set():
                    return None
                if self._buffer:
                    frame = self._buffer.popleft()
                    self._delivered += 1
                    self._cond.notify_all()
                    return frame
                if self._error is not None:
                    exc = self._error
                    raise SourceError(f"capture from {self.source.name} failed: {type(exc).__name__}: {exc}") from exc
                if self._finished:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no frame from {self.source.name} within {timeout} s")
                self._cond.wait(remaining)

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    @property
    def stats(self) -> CaptureStats:
        with self._cond:
            return CaptureStats(
                source=self.source.name,
                frames_read=self._frames_read,
                delivered=self._delivered,
                dropped=self._dropped,
                buffered=len(self._buffer),
                reconnects=self.source.reconnects,
                last_error=self.source.last_error,
                running=self._thread is not None and self._thread.is_alive(),
                skipped=self._skipped,
            )
