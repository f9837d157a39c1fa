"""A Recognizer on a real-time synthetic camera for a while: what a user of the demo would see.

The path is the demo's: :meth:`~streamtsm.Recognizer.iter_frames` on a live
:class:`~streamtsm.sources.SyntheticSource` (30 fps, paced in real time, read by the capture
thread, latest frame wins). Reported per run: predictions per second (against the card's rate),
state resets other than the stream start (from each ``Prediction.reset``, as an application
sees them), capture-to-label latency and inference time of every prediction, and the frames
the live source dropped because the model was busy. The first ``warmup_s`` seconds (first
calls allocate, caches fill) are not counted.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

from ..sources import SyntheticSource
from ..sampling import ResetReason
from .machine import load_average
from .timing import Timing

SOURCE_FPS = 30.0


@dataclass
class LiveRun:
    """Figures of one live run (after warm-up)."""

    seconds: float
    source_fps: float
    frames_captured: int
    frames_to_model: int
    frames_dropped: int
    predictions: int
    resets: dict[str, int] = field(default_factory=dict)  # reason -> count, stream start excluded
    end_to_end: Timing | None = None
    inference: Timing | None = None
    load_start: float | None = None
    load_end: float | None = None

    @property
    def predictions_per_s(self) -> float:
        return self.predictions / self.seconds if self.seconds > 0 else 0.0

    @property
    def sustained_fps(self) -> float:
        """Frames the model took per second (the source's rate when it kept up)."""
        return self.frames_to_model / self.seconds if self.seconds > 0 else 0.0

    @property
    def gap_resets(self) -> int:
        return self.resets.get(ResetReason.GAP.value, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3), "source_fps": self.source_fps, "frames_captured": self.frames_captured,
            "frames_to_model": self.frames_to_model, "frames_dropped": self.frames_dropped,
            "sustained_fps": self.sustained_fps, "predictions": self.predictions,
            "predictions_per_s": self.predictions_per_s, "gap_resets": self.gap_resets, "resets": dict(self.resets),
            "end_to_end": self.end_to_end, "inference": self.inference,
            "load_start": self.load_start, "load_end": self.load_end,
        }


def live_run(recognizer: Any, seconds: float, *, warmup_s: float = 0.0, fps: float = SOURCE_FPS, seed: int = 0,
             size: tuple[int, int] = (240, 320)) -> LiveRun:
    """Run ``recognizer`` on a real-time synthetic source for ``warmup_s + seconds`` of wall time."""
    if seconds <= 0 or warmup_s < 0:
        raise ValueError(f"a live run needs seconds > 0 and warmup_s >= 0, got {seconds} and {warmup_s}")
    source = SyntheticSource(seed=seed, duration_s=warmup_s + seconds + 2.0, fps=fps, size=size, realtime=True)
    e2e: list[float] = []
    inference: list[float] = []
    resets: collections.Counter[str] = collections.Counter()
    frames = 0
    start_stats = None
    load_start = load_average()
    frames_iter = recognizer.iter_frames(source)
    t0 = time.monotonic()
    t_measure = t0 + warmup_s
    try:
        for _frame, prediction in frames_iter:
            now = time.monotonic()
            if now >= t_measure + seconds:
                break
            if now < t_measure:
                continue
            if start_stats is None:
                start_stats = recognizer.capture_stats
                t_measure = now  # the measured window starts at its first frame
            frames += 1
            if prediction is None:
                continue
            e2e.append(prediction.timings.end_to_end_ms)
            inference.append(prediction.timings.inference_ms)
            if prediction.reset is not None and prediction.reset.reason is not ResetReason.STREAM_START:
                resets[prediction.reset.reason.value] += 1
        wall = time.monotonic() - t_measure
    finally:
        frames_iter.close()  # stops the capture thread and closes the source now, not at garbage collection
    end_stats = recognizer.capture_stats
    read0, dropped0 = (start_stats.frames_read, start_stats.dropped) if start_stats is not None else (0, 0)
    return LiveRun(
        seconds=wall,
        source_fps=fps,
        frames_captured=end_stats.frames_read - read0 if end_stats is not None else frames,
        frames_to_model=frames,
        frames_dropped=end_stats.dropped - dropped0 if end_stats is not None else 0,
        predictions=len(e2e),
        resets=dict(resets),
        end_to_end=Timing.from_ms("end_to_end", e2e) if e2e else None,
        inference=Timing.from_ms("inference", inference) if inference else None,
        load_start=load_start,
        load_end=load_average(),
    )
