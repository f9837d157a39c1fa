"""Every frame of a video file, in order, and a record of whether the file held what it promised.

A damaged or truncated file often still has a header announcing its full length, and OpenCV
simply stops decoding early. The source compares the frames it decoded with the header's frame
count, so the user is told that the file is damaged instead of getting a silently short run.

The path may be given as a local ``file://`` URL (``file:///data/clip.mp4``, percent-escapes
decoded). A file that exists but cannot be read says so, not that it is no video.
"""

from __future__ import annotations

import logging
import math
import urllib.parse
from pathlib import Path

import cv2
import numpy as np

from .base import Frame, Source, SourceError

logger = logging.getLogger(__name__)

_RE_ENCODE = "re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4"

_SOURCES = "a camera index such as 0, a video path, an rtsp:// or http:// URL, or 'synthetic'"


def video_path(spec: str | Path) -> Path:
    """The path a file source spec names: a path as given, or the local path of a ``file://`` URL
    (``Path("file:///a/b.mp4")`` would be ``file:/a/b.mp4``). Refuses an empty spec and a URL of
    another host."""
    if isinstance(spec, Path):
        return spec
    if not spec.strip():
        raise SourceError(f"the source is empty ({spec!r}): give {_SOURCES}")
    if not spec.lower().startswith("file:") or Path(spec).exists():  # a file really called file:x.mp4 is that file
        return Path(spec)
    host, path = "", spec[len("file:"):]  # file:/PATH has no host
    if path.startswith("//"):  # file://HOST/PATH, HOST empty or localhost
        host, slash, rest = path[2:].partition("/")
        path = slash + rest
    if host.lower() not in ("", "localhost") or not path.startswith("/"):
        raise SourceError(f"{spec!r} is not a local file URL: give file:///absolute/path.mp4 (or the path itself), "
                          "or a stream's rtsp:// or http:// URL")
    decoded = Path(urllib.parse.unquote(path))  # %20 is a space; a '#' or '?' is part of the name, as typed
    return decoded if decoded.exists() or not Path(path).exists() else Path(path)


def _file_fps(cap: cv2.VideoCapture, what: str, default: float = 30.0) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    if not (math.isfinite(fps) and 0.1 <= fps <= 1000.0):
        logger.warning("%s reports no usable frame rate (%r); assuming %.0f fps", what, fps, default)
        return default
    return fps


def _announced_frames(cap: cv2.VideoCapture) -> int | None:
    """The header's frame count, or None when the container gives none (or nonsense)."""
    count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
    return int(count) if math.isfinite(count) and 1 <= count < 2**40 else None


def _short_by_more_than_rounding(decoded: int, announced: int) -> bool:
    """Some containers only estimate the count (duration x fps): a frame or 1 % short is not damage."""
    return announced - decoded > max(1, announced // 100)


class VideoFileSource(Source):
    """Every frame of a video file, in order.

    ``realtime=True`` paces delivery to the file's frame rate (a demo that looks like a camera);
    the source still counts as non-live, so a capture thread delivers every frame.
    ``loop=True`` starts again at the end; indices and ``media_time_s`` keep increasing.

    ``frames_announced``: the frame count in the file's header (None if it has none).
    ``frames_decoded``: frames decoded in the current (or last) pass over the file.
    ``ended_early``: the file ended clearly short of ``frames_announced`` (it is damaged or
    truncated); a warning is logged when that happens.
    """

    is_live = False

    def __init__(self, path: str | Path, realtime: bool = False, loop: bool = False) -> None:
        self.path = video_path(path)
        super().__init__(str(self.path))
        if not self.path.exists():
            raise SourceError(
                f"video file '{self.path}' does not exist (absolute path: {self.path.absolute()}); "
                "give an existing video path, a camera index such as 0, an rtsp:// or http:// URL, or 'synthetic'"
            )
        if not self.path.is_file():
            raise SourceError(f"'{self.path}' is not a file; give the path of a video file")
        try:
            with open(self.path, "rb") as f:
                f.read(1)
        except OSError as exc:  # OpenCV would only say that it is no video it can open
            raise SourceError(f"video file '{self.path}' cannot be read ({exc.strerror or type(exc).__name__}): "
                              "check its permissions (ls -l), or give another source") from None
        self.realtime = realtime
        self.loop = loop
        self.fps = 0.0
        self.frames_announced: int | None = None
        self.frames_decoded = 0
        self.ended_early = False
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
                f"container/codec OpenCV's FFmpeg cannot read ({_RE_ENCODE})"
            )
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise SourceError(
                f"'{self.path}' opened as a video but no frame could be decoded (empty, truncated, or an "
                f"unsupported codec; {_RE_ENCODE})"
            )
        self._cap, self._pending = cap, image
        self._file_frame = 0
        self.frames_decoded = 1

    def _open(self) -> None:
        self._open_capture()
        assert self._cap is not None
        self.fps = _file_fps(self._cap, f"video file '{self.path}'")
        self.frames_announced = _announced_frames(self._cap)

    def _check_complete(self) -> None:
        """At the end of a pass: say so if the file held clearly fewer frames than announced."""
        announced = self.frames_announced
        if self.ended_early or announced is None or not _short_by_more_than_rounding(self.frames_decoded, announced):
            return
        self.ended_early = True
        logger.warning(
            "video file '%s' ended after %d of the %d frames its header announced: the file is damaged or "
            "truncated (%s)", self.path, self.frames_decoded, announced, _RE_ENCODE,
        )

    def _read(self) -> Frame | None:
        assert self._cap is not None
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if ok and image is not None:
                self.frames_decoded += 1
            else:
                self._check_complete()
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
