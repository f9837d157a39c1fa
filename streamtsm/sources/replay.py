"""A live source that replays frames held in memory at a fixed rate (a camera with no cost to read).

Benchmarks of many streams must measure the recognizer, not the rendering or decoding of their
frames: each stream replays a few pre-rendered frames in a loop, paced like a camera, as a
live source (the capture thread keeps only the newest frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import Frame, Source, SourceError


class ReplaySource(Source):
    """``frames`` replayed in a loop at ``fps`` for ``duration_s`` seconds (then the stream ends)."""

    is_live = True

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 30.0, duration_s: float = 10.0, *,
                 name: str = "replay", start_s: float = 0.0) -> None:
        super().__init__(name)
        if not len(frames):
            raise SourceError("a replay source needs at least one frame")
        if not (fps > 0 and duration_s > 0 and start_s >= 0):
            raise SourceError(f"replay needs fps > 0, duration_s > 0 and start_s >= 0, got {fps}, {duration_s}, {start_s}")
        self.frames = [np.ascontiguousarray(f) for f in frames]
        self.fps, self.duration_s, self.start_s = float(fps), float(duration_s), float(start_s)
        self._i = 0

    def _open(self) -> None:
        self._i = 0

    def _read(self) -> Frame | None:
        media_time_s = self.start_s + self._i / self.fps
        if media_time_s >= self.start_s + self.duration_s:
            return None
        self._pace(media_time_s)
        if self._interrupted.is_set():
            return None
        image = self.frames[self._i % len(self.frames)]
        self._i += 1
        return self._make_frame(image, media_time_s)

    def _close(self) -> None:
        pass
