"""Frame sources (camera, video file, RTSP/HTTP stream, synthetic) and the capture thread.

numpy + OpenCV only (on the Jetson path).

Why a thread per source: a camera produces frames at its own pace whether or not the model
keeps up. Reading in the inference loop would let frames pile up in the driver's queue, so the
model would see the past with ever growing latency. The :class:`CaptureThread` reads
continuously; for live sources it keeps only the newest frame (older ones are dropped and
counted), for files it delivers every frame and blocks the reader when the consumer falls
behind (backpressure), because a file has no "now" to keep up with.

A source is a small object with one job: ``open()``, ``read() -> Frame | None`` (None at end
of stream), ``close()``, and ``interrupt()`` to cut short any waiting it does (pacing,
reconnect backoff) so that :meth:`CaptureThread.stop` returns promptly.
"""

from __future__ import annotations

import collections
import glob
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

logger = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class SourceError(RuntimeError):
    """A frame source cannot be opened or has failed; the message says what to try."""


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
    """

    image: np.ndarray
    index: int
    timestamp: float
    media_time_s: float
    source: str
    label: str | None = None
    segment: int = 0


class Source:
    """Base class of frame sources; subclasses implement ``_open``, ``_read`` and ``_close``."""

    #: Live sources produce frames in real time whether or not anyone reads them.
    is_live: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.reconnects = 0
        self.last_error: str | None = None
        self._interrupted = threading.Event()
        self._is_open = False
        self._next_index = 0
        self._clock_origin: float | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> "Source":
        """Open the device/file/stream; raises :class:`SourceError` with what to try. Idempotent."""
        if not self._is_open:
            self._interrupted.clear()
            self._open()
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
        """Make pacing and reconnect waits return now (called from another thread by stop())."""
        self._interrupted.set()

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


def _file_fps(cap: cv2.VideoCapture, what: str, default: float = 30.0) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not (math.isfinite(fps) and 0.1 <= fps <= 1000.0):
        logger.warning("%s reports no usable frame rate (%r); assuming %.0f fps", what, fps, default)
        return default
    return fps


class VideoFileSource(Source):
    """Every frame of a video file, in order.

    ``realtime=True`` paces delivery to the file's frame rate (a demo that looks like a camera);
    the source still counts as non-live, so a :class:`CaptureThread` delivers every frame.
    ``loop=True`` starts again at the end; indices and ``media_time_s`` keep increasing.
    """

    is_live = False

    def __init__(self, path: str | Path, realtime: bool = False, loop: bool = False) -> None:
        self.path = Path(path)
        super().__init__(str(self.path))
        if not self.path.exists():
            raise SourceError(
                f"video file '{self.path}' does not exist (absolute path: {self.path.absolute()}); "
                "give an existing video path, a camera index such as 0, an rtsp:// or http:// URL, or 'synthetic'"
            )
        if not self.path.is_file():
            raise SourceError(f"'{self.path}' is not a file; give the path of a video file")
        self.realtime = realtime
        self.loop = loop
        self.fps = 0.0
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None
        self._file_frame = 0  # frame position within the current pass over the file
        self._loop_offset_s = 0.0

    def _open_capture(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"'{self.path}' could not be opened as a video: it is not a video file, is damaged, or uses a "
                "container/codec OpenCV's FFmpeg cannot read (re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"
            )
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise SourceError(
                f"'{self.path}' opened as a video but no frame could be decoded (empty, truncated, or an "
                "unsupported codec; re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"
            )
        self._cap, self._pending = cap, image
        self._file_frame = 0

    def _open(self) -> None:
        self._open_capture()
        assert self._cap is not None
        self.fps = _file_fps(self._cap, f"video file '{self.path}'")

    def _read(self) -> Frame | None:
        assert self._cap is not None
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                if not self.loop or self._file_frame == 0:
                    return None
                self._loop_offset_s += self._file_frame / self.fps
                self._cap.release()
                self._open_capture()
                image, self._pending = self._pending, None
        media_time_s = self._loop_offset_s + self._file_frame / self.fps
        self._file_frame += 1
        if self.realtime:
            self._pace(media_time_s)
        return self._make_frame(image, media_time_s)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CameraSource(Source):
    """A local camera through ``cv2.VideoCapture(index)`` (V4L2 on Linux).

    ``width``/``height``/``fps`` are requests; the driver may choose differently and the actual
    values are logged. A few consecutive failed reads are tolerated (USB cameras hiccup); more
    than ``max_failed_reads`` raise :class:`SourceError` (unplugged, or taken by another app).
    """

    is_live = True

    def __init__(
        self,
        index: int,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        *,
        max_failed_reads: int = 10,
    ) -> None:
        super().__init__(f"camera:{index}")
        self.index = int(index)
        self.width, self.height, self.fps = width, height, fps
        self.max_failed_reads = max_failed_reads
        self._cap: cv2.VideoCapture | None = None

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            devices = sorted(glob.glob("/dev/video*"))
            found = f"video devices present: {', '.join(devices)}" if devices else "no /dev/video* device exists"
            raise SourceError(
                f"could not open camera index {self.index} ({found}). Try another index (--source 0, 1, ...), "
                "check that your user may read /dev/video* (e.g. member of the 'video' group) and that no other "
                "app holds the camera, or run without a camera: --source synthetic or --source path/to/video.mp4"
            )
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height), (cv2.CAP_PROP_FPS, self.fps)):
            if value is not None:
                cap.set(prop, float(value))
        logger.info(
            "camera %d opened: %dx%d @ %.1f fps",
            self.index,
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            cap.get(cv2.CAP_PROP_FPS),
        )
        self._cap = cap

    def _read(self) -> Frame | None:
        assert self._cap is not None
        for _ in range(self.max_failed_reads):
            ok, image = self._cap.read()
            if ok and image is not None:
                return self._make_frame(image)
            if self._interrupted.is_set():
                return None
        self.last_error = f"{self.max_failed_reads} consecutive failed reads"
        raise SourceError(
            f"camera {self.index} stopped delivering frames ({self.max_failed_reads} failed reads in a row): "
            "was it unplugged, or taken by another application?"
        )

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: ``initial_s * factor**attempt`` capped at ``max_s``.

    ``max_attempts`` consecutive failed reconnects raise :class:`SourceError` (None: retry forever,
    the right choice for an unattended robot).
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * self.factor**attempt)


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x`` (URLs end up in logs)."""
    return re.sub(r"(//[^/:@]+:)[^/@]*@", r"\1***@", url)


class StreamSource(Source):
    """An RTSP/HTTP/... network stream through OpenCV's FFmpeg backend, with reconnects.

    Opening fails fast with :class:`SourceError` (a wrong URL should not look like an outage).
    Once running, a failed read is treated as an outage: it is logged, the capture is reopened
    after an exponential :class:`Backoff` delay (interruptible), and successful reconnects are
    counted in ``reconnects``. FFmpeg's open/read timeouts bound every blocking call.
    """

    is_live = True

    def __init__(
        self,
        url: str,
        *,
        backoff: Backoff = Backoff(),
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(redact_url(url))
        self.url = url
        self.backoff = backoff
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.outages = 0
        self._cap: cv2.VideoCapture | None = None

    def _try_open(self) -> cv2.VideoCapture | None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000),
        ]  # fmt: skip
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _open(self) -> None:
        cap = self._try_open()
        if cap is None:
            raise SourceError(
                f"could not open stream {self.name}: host unreachable, wrong path or credentials, or not a video "
                "stream. Check the URL with ffplay or VLC; for RTSP behind NAT/firewalls try TCP transport "
                "(environment OPENCV_FFMPEG_CAPTURE_OPTIONS='rtsp_transport;tcp')"
            )
        self._cap = cap

    def _read(self) -> Frame | None:
        attempt = 0
        while True:
            if self._cap is not None:
                ok, image = self._cap.read()
                if ok and image is not None:
                    return self._make_frame(image)
                self.outages += 1
                self.last_error = "read failed (stream outage)"
                logger.warning("stream %s: read failed; reconnecting", self.name)
                self._cap.release()
                self._cap = None
            if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                raise SourceError(
                    f"stream {self.name} is down: {attempt} reconnect attempts failed "
                    f"(last error: {self.last_error}); check the camera/server and the network"
                )
            delay = self.backoff.delay(attempt)
            attempt += 1
            logger.info("stream %s: reconnect attempt %d in %.2f s", self.name, attempt, delay)
            if self._interrupted.wait(delay):
                return None  # stop() was called
            self._cap = self._try_open()
            if self._cap is None:
                self.last_error = f"reconnect attempt {attempt} could not open the stream"
                logger.warning("stream %s: %s", self.name, self.last_error)
            else:
                self.reconnects += 1
                logger.info("stream %s: reconnected after %d attempt(s)", self.name, attempt)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticSource(Source):
    """A camera stand-in that plays the synthetic gesture script, with ground-truth labels.

    Live-like by default: frames are paced in real time and a :class:`CaptureThread` treats it as
    a live source (latest frame wins). ``realtime=False`` produces frames as fast as they are
    read and delivers every one (fast tests, offline evaluation).
    """

    def __init__(
        self,
        seed: int = 0,
        duration_s: float = 120.0,
        fps: float = 30.0,
        size: tuple[int, int] = (240, 320),
        *,
        realtime: bool = True,
        split: str = "test",
    ) -> None:
        super().__init__(f"synthetic:{seed}")
        if fps <= 0 or duration_s <= 0:
            raise SourceError(f"synthetic source needs fps > 0 and duration_s > 0, got fps={fps}, duration_s={duration_s}")
        self.seed, self.duration_s, self.fps, self.size = int(seed), float(duration_s), float(fps), tuple(size)
        self.realtime = realtime
        self.is_live = realtime
        self.split = split
        self.script: Any = None
        self._i = 0

    def _open(self) -> None:
        try:
            from streamtsm.synthetic import GestureScript  # numpy/OpenCV only; imported when used
        except ImportError as exc:
            raise SourceError(f"the synthetic source needs streamtsm.synthetic, which failed to import: {exc}") from exc
        try:
            self.script = GestureScript(self.seed, duration_s=self.duration_s, size=self.size, fps=self.fps, split=self.split)
        except ValueError as exc:  # SyntheticError: a bad size/fps/split, with its own explanation
            raise SourceError(f"synthetic source {self.name}: {exc}") from exc
        self._i = 0

    def _read(self) -> Frame | None:
        if self._i >= self.script.num_frames:
            return None
        media_time_s = self._i / self.fps
        if self.realtime:
            self._pace(media_time_s)
        image = self.script.frame_at(self._i)
        label = self.script.label_at(media_time_s)
        self._i += 1
        return self._make_frame(image, media_time_s, label)

    def _close(self) -> None:
        self.script = None


def open_source(spec: str | int | Path, **kwargs: Any) -> Source:
    """Build and open a source from a command-line style spec.

    ``0`` / ``"0"`` -> camera; ``rtsp://``, ``http(s)://`` ... -> stream; ``"synthetic"`` or
    ``"synthetic:SEED"`` -> synthetic; anything else -> video file path. ``kwargs`` go to the
    source's constructor. Raises :class:`SourceError` naming the problem.
    """
    source: Source
    if isinstance(spec, bool):
        raise SourceError(f"source spec {spec!r} is not a camera index, path, URL or 'synthetic'")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        source = CameraSource(int(spec), **kwargs)
    elif isinstance(spec, str) and spec.lower().startswith(STREAM_SCHEMES):
        source = StreamSource(spec, **kwargs)
    elif isinstance(spec, str) and (spec == "synthetic" or spec.startswith("synthetic:")):
        seed_text = spec.partition(":")[2] or "0"
        if not seed_text.lstrip("-").isdigit():
            raise SourceError(f"synthetic source seed must be an integer, as in 'synthetic:3', got {spec!r}")
        source = SyntheticSource(seed=int(seed_text), **kwargs)
    elif isinstance(spec, (str, Path)):
        source = VideoFileSource(spec, **kwargs)
    else:
        raise SourceError(f"source spec must be a camera index, path, URL or 'synthetic', got {type(spec).__name__}")
    return source.open()


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of a :class:`CaptureThread`'s counters.

    Always ``frames_read == delivered + dropped + buffered`` (frames read while stopping excepted).
    """

    source: str
    frames_read: int
    delivered: int
    dropped: int
    buffered: int
    reconnects: int
    last_error: str | None
    running: bool


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
    """

    def __init__(self, source: Source, *, latest_only: bool | None = None, queue_size: int = 8) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.source = source
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

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "CaptureThread":
        """Open the source (errors raise here, in the caller's thread) and start reading."""
        if self._thread is not None:
            return self
        self.source.open()
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
                self._push(frame)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, never lost
            logger.error("capture from %s failed: %r", self.source.name, exc)
            self.source.last_error = f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._error = exc
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()
            try:
                self.source.close()
            except Exception:  # noqa: BLE001 - closing must not mask the real outcome
                logger.exception("closing %s failed", self.source.name)

    def _push(self, frame: Frame) -> None:
        with self._cond:
            self._frames_read += 1
            if self.latest_only:
                if len(self._buffer) >= self._capacity:
                    self._buffer.popleft()
                    self._dropped += 1
            else:
                while len(self._buffer) >= self._capacity and not self._stop_event.is_set():
                    self._cond.wait()
                if self._stop_event.is_set():
                    return
            self._buffer.append(frame)
            self._cond.notify_all()

    # -- consumer side ---------------------------------------------------------------------
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
            )
