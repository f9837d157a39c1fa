"""Network streams (RTSP, HTTP, ...) through OpenCV's FFmpeg backend, with reconnects.

A camera on the network drops out (Wi-Fi, a rebooting NVR); an unattended recognizer must
survive that. Opening fails fast, so a wrong URL does not look like an outage; once running, a
failed read reconnects with an exponential, interruptible backoff. FFmpeg's open blocks inside C
for up to ``open_timeout_s`` (a host that accepts and never answers), so it runs on a helper
thread: ``interrupt()``, a run's stop event and Ctrl-C end the wait at once. Credentials in URLs
are redacted before they reach a name or a log line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass

import cv2

from .base import Frame, OpenStopped, Source, SourceError

logger = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


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

    def _open_capture(self) -> cv2.VideoCapture | None:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000),
        ]  # fmt: skip
        cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _try_open(self) -> cv2.VideoCapture | None:
        """The open capture, or None when it failed. Raises :class:`OpenStopped` when stopped meanwhile
        (the helper thread then releases whatever it opens)."""
        opened: list[cv2.VideoCapture | None] = []  # the helper's result, once it has one
        lock = threading.Lock()
        abandoned = False

        def work() -> None:
            try:
                cap = self._open_capture()
            except Exception as exc:  # noqa: BLE001 - OpenCV's own error: report it as a failed open
                logger.debug("stream %s: opening raised %r", self.name, exc)
                cap = None
            with lock:
                if abandoned and cap is not None:
                    cap.release()
                opened.append(cap)

        helper = threading.Thread(target=work, name=f"open[{self.name}]", daemon=True)
        helper.start()
        while helper.is_alive():
            helper.join(0.05)
            with lock:
                if not opened and self._stopping():
                    abandoned = True
                    raise OpenStopped(f"opening stream {self.name} was stopped")
        return opened[0]

    def _open(self) -> None:
        t0 = time.monotonic()
        cap = self._try_open()
        if cap is None:
            waited = time.monotonic() - t0
            what = (f"it did not answer within {self.open_timeout_s:g} s (open_timeout_s)" if waited >= 0.9 * self.open_timeout_s
                    else "host unreachable, wrong path or credentials, or not a video stream")
            raise SourceError(
                f"could not open stream {self.name}: {what}. Check the URL with ffplay or VLC; for RTSP behind "
                "NAT/firewalls try TCP transport (environment OPENCV_FFMPEG_CAPTURE_OPTIONS='rtsp_transport;tcp')"
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
            try:
                self._cap = self._try_open()
            except OpenStopped:
                return None  # stop() was called while reopening
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
