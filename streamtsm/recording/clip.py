"""Writing one clip: frames exactly as captured, at the rate the source really delivers them.

A camera's announced frame rate is often wrong (many webcams halve it in low light), so the
rate written into each file is measured: a :class:`~streamtsm.sampling.RateMeter` follows the source's own clock
(``Frame.media_time_s``) over the last couple of seconds. For files and the synthetic sources
that clock is the exact media time, so their rate is exact however fast they are read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..sampling import RateMeter
from ..sources import Frame


class ClipError(RuntimeError):
    """A clip could not be written; the message says what to check."""


def measured_fps(meter: RateMeter, fallback: float = 30.0) -> float:
    """The meter's rate rounded to 1/1000 fps; ``fallback`` before two distinct times or when implausible."""
    fps = meter.fps
    return round(fps, 3) if fps is not None and math.isfinite(fps) and 0.1 <= fps <= 1000 else fallback


class ClipWriter:
    """An MP4 (mp4v) file being written at ``fps``; opened at the first frame, which fixes the size.

    Keeps what the manifest needs: frame count, size, the first frame's source time and the
    ground-truth labels the frames carried (synthetic sources) as runs ``[[label, frames], ...]``
    in order -- so one can check that a take holds its whole gesture.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.first: Frame | None = None
        self.truth: list[list[Any]] = []
        self._writer: Any = None

    def fits(self, frame: Frame) -> bool:
        """Whether ``frame`` can continue this clip (same size and the same source segment)."""
        return self.first is None or (frame.image.shape[:2] == self.size and frame.segment == self.first.segment)

    def write(self, frame: Frame) -> None:
        image: np.ndarray = frame.image
        if self._writer is None:
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise ClipError(f"OpenCV cannot write an MP4 video to {self.path} ({w}x{h} at {self.fps} fps): "
                                "check that the folder is writable and the disk not full")
            self.size, self.first = (h, w), frame
        self._writer.write(image)
        self.frames += 1
        if frame.label is not None:
            if self.truth and self.truth[-1][0] == frame.label:
                self.truth[-1][1] += 1
            else:
                self.truth.append([frame.label, 1])

    def finish(self) -> None:
        """Close the file and check it holds every frame written (a full disk truncates silently)."""
        if self._writer is None:
            raise ClipError(f"no frame was written to {self.path}")
        self._writer.release()
        self._writer = None
        cap = cv2.VideoCapture(str(self.path))
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        if count != self.frames:
            raise ClipError(f"{self.path} holds {count} of the {self.frames} frames written: is the disk full?")

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.path.unlink(missing_ok=True)

    def entry(self) -> dict[str, Any]:
        """The clip's manifest fields (the folder adds path, class, label)."""
        assert self.first is not None and self.size is not None
        out: dict[str, Any] = {"frames": self.frames, "fps": self.fps, "size": list(self.size),
                               "duration_s": round(self.frames / self.fps, 4),
                               "media_start_s": round(self.first.media_time_s, 4)}
        if self.truth:
            out["truth"] = self.truth
        return out
