"""A camera stand-in that plays a :class:`~streamtsm.synthetic.GestureScript` with ground truth.

Tests, demos and benchmarks need a "camera" with known gestures at known times and no
hardware; every frame carries the script's label for that instant.
"""

from __future__ import annotations

from typing import Sequence

from streamtsm.synthetic import GestureScript, SyntheticError

from .base import Frame, Source, SourceError


class SyntheticSource(Source):
    """A camera stand-in that plays the synthetic gesture script, with ground-truth labels.

    Live-like by default: frames are paced in real time and a capture thread treats it as a
    live source (latest frame wins). ``realtime=False`` produces frames as fast as they are
    read and delivers every one (fast tests, offline evaluation). ``labels``: the gestures the
    script plays (default: the embedded model's eight; e.g. ``EXTRA_GESTURES`` for a scripted
    stream of gestures that model never saw).
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
        labels: Sequence[str] | None = None,
    ) -> None:
        super().__init__(f"synthetic:{seed}")
        if fps <= 0 or duration_s <= 0:
            raise SourceError(f"synthetic source needs fps > 0 and duration_s > 0, got fps={fps}, duration_s={duration_s}")
        self.seed, self.duration_s, self.fps, self.size = int(seed), float(duration_s), float(fps), tuple(size)
        self.realtime = realtime
        self.is_live = realtime
        self.split = split
        self.labels = None if labels is None else tuple(labels)
        self.script: GestureScript | None = None
        self._i = 0

    def _open(self) -> None:
        try:
            options = {} if self.labels is None else {"labels": self.labels}
            self.script = GestureScript(self.seed, duration_s=self.duration_s, size=self.size, fps=self.fps,
                                        split=self.split, **options)
        except SyntheticError as exc:  # a bad size/fps/split, with its own explanation
            raise SourceError(f"synthetic source {self.name}: {exc}") from exc
        self._i = 0

    def _read(self) -> Frame | None:
        assert self.script is not None
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
