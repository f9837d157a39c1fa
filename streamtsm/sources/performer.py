"""A synthetic performer: a camera stand-in that does the gesture it is asked for, once, then rests.

``streamtsm record`` prompts a person ("do: wave") and records what the camera sees. For tests,
demos and fine-tuning experiments without a person, this source plays the person: it shows an
idle scene, and when :meth:`PerformerSource.perform` is called (from the recorder's thread,
while the capture thread reads frames) it cuts to a new scene -- a fresh random object, texture
and background of its split -- waits a human-like reaction time, performs that gesture once and
holds still until the next cue. Each performance is exactly a :func:`~streamtsm.synthetic.render_clip`
clip of a per-take seed, so a held-out set is the same performer on ``split="test"`` (shapes and
textures no training take shows).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from streamtsm.synthetic import ClipPlan, SyntheticError, gesture_seconds, plan_clip
from streamtsm.synthetic.motion import PERFORMABLE
from streamtsm.synthetic.params import SPLIT_CODE

from .base import Frame, Source, SourceError

#: The reaction time between the cue and the gesture's first frame.
LEAD_IN_S = (0.1, 0.3)
#: A gesture ends at least this long before the take does (the recorder's last frames are rest).
TAIL_S = 0.15
#: The label of frames outside a gesture (the generator's idle class).
IDLE_LABEL = "no_motion"
#: How long the opening idle scene's behaviour (lighting change, fade, ...) takes before it holds.
_OPENING_IDLE_S = 4.0


@dataclass(frozen=True)
class _Scene:
    """What the performer shows from source frame ``start`` on."""

    plan: ClipPlan
    start: int
    label: str


class PerformerSource(Source):
    """A live-like source that performs gestures on cue (see the module docstring).

    ``realtime=True`` (default) paces frames at ``fps`` and counts as live, like a camera;
    ``realtime=False`` renders frames as fast as they are read and delivers every one (a test
    records a hundred takes in seconds). Frames carry the ground truth in ``Frame.label``: the
    gesture's name on the frames where it is in progress, ``"no_motion"`` elsewhere. Takes are
    numbered from ``first_take`` (default 1) in the order they are cued; take ``k``'s appearance
    and motion depend only on ``(seed, split, k)`` and the gesture, so a session is reproducible,
    and a session that continues a recording (``first_take`` after its last take) records new scenes.
    """

    #: Gestures it can perform: every gesture of the generator but the idle one.
    performable: tuple[str, ...] = PERFORMABLE

    def __init__(
        self,
        seed: int = 0,
        fps: float = 30.0,
        size: tuple[int, int] = (240, 320),
        *,
        realtime: bool = True,
        split: str = "train",
        first_take: int = 1,
    ) -> None:
        super().__init__(f"synthetic:performer:{split}:{seed}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise SourceError(f"synthetic performer seed must be a non-negative integer, got {seed!r}")
        if split not in SPLIT_CODE:
            raise SourceError(f"synthetic performer split must be 'train' or 'test', got {split!r}")
        if isinstance(first_take, bool) or not isinstance(first_take, (int, np.integer)) or first_take < 1:
            raise SourceError(f"synthetic performer first_take must be a whole number from 1, got {first_take!r}")
        self.seed, self.split, self.fps, self.size = int(seed), split, float(fps), tuple(size)
        self.realtime = realtime
        self.is_live = realtime
        #: the number of the last take cued (``first_take - 1`` before the first cue)
        self.takes = int(first_take) - 1
        self._lock = threading.Lock()
        self._scene: _Scene | None = None
        self._i = 0

    @classmethod
    def min_take_seconds(cls, gesture: str) -> float:
        """The shortest take that holds ``gesture`` at its shortest, after the reaction time."""
        cls._check_gesture(gesture)
        return round(LEAD_IN_S[1] + gesture_seconds(gesture)[0] + TAIL_S, 3)

    @classmethod
    def _check_gesture(cls, gesture: str) -> None:
        if gesture not in cls.performable:
            raise SourceError(f"the synthetic performer cannot perform {gesture!r}: it knows {', '.join(cls.performable)}")

    def _take_seed(self, take: int) -> int:
        return int(np.random.SeedSequence([self.seed, SPLIT_CODE[self.split], take]).generate_state(1)[0])

    def _plan(self, label: str, take: int, **options: float) -> ClipPlan:
        try:
            return plan_clip(label, self._take_seed(take), size=self.size, fps=self.fps, split=self.split, **options)
        except SyntheticError as exc:  # a bad size or fps, with its own explanation
            raise SourceError(f"synthetic performer {self.name}: {exc}") from exc

    def perform(self, gesture: str, within_s: float | None = None) -> int:
        """Cut to a new scene and perform ``gesture`` once; returns the index of the cut's frame.

        The gesture starts 0.1-0.3 s after the cut and, with ``within_s``, ends at least
        0.15 s before ``within_s`` seconds have passed (a longer drawn gesture is shortened to
        fit; a take shorter than :meth:`min_take_seconds` is refused). Safe to call from any
        thread while another reads frames: the frame returned is the first one of the new scene.
        """
        self._check_gesture(gesture)
        if within_s is not None and within_s < self.min_take_seconds(gesture):
            raise SourceError(f"a take of {within_s} s is too short for {gesture}: it needs at least "
                              f"{self.min_take_seconds(gesture)} s")
        if not self.is_open:
            raise SourceError(f"{self.name} is not open: open it (or start its capture thread) before cueing it")
        take = self.takes + 1
        lead = float(np.random.default_rng([self._take_seed(take), 1]).uniform(*LEAD_IN_S))
        limit = None if within_s is None else within_s - lead - TAIL_S
        plan = self._plan(gesture, take, lead_in_s=lead, max_duration_s=limit)
        with self._lock:
            self.takes = take
            self._scene = _Scene(plan, self._i, gesture)
            return self._i

    def _open(self) -> None:
        plan = self._plan(IDLE_LABEL, 0, duration_s=_OPENING_IDLE_S)
        with self._lock:
            self._i = self._next_index
            self._scene = _Scene(plan, self._i, IDLE_LABEL)

    def _read(self) -> Frame | None:
        with self._lock:
            scene, i = self._scene, self._i
            self._i += 1
        assert scene is not None
        media_time_s = i / self.fps
        if self.realtime:
            self._pace(media_time_s)
        j = i - scene.start
        first, end = scene.plan.gesture_frames
        label = scene.label if first <= j < end else IDLE_LABEL
        return self._make_frame(scene.plan.renderer.frame(j), media_time_s, label)

    def _close(self) -> None:
        with self._lock:
            self._scene = None
