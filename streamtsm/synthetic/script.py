"""A scripted live scene: gestures at known times on one background, idle objects between them.

This is what the ``synthetic`` camera source plays: a ground-truth timeline for end-to-end
tests of the recognizer. Cost (2-core dev box, 320x240): mean 0.3 ms per frame, p99 about 1 ms;
the first visible frame of each new object also rasterises its texture (4-7 ms), still inside a
30 fps frame budget.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .appearance import make_appearance
from .motion import CLASSES, GESTURE_SECONDS, GESTURES, PERFORMABLE, gesture_seconds, make_jitter, make_motion
from .params import (
    S_APPEARANCE,
    S_CAMERA,
    S_MOTION,
    S_TIMELINE,
    SyntheticError,
    check_fps,
    check_frame_index,
    check_seed,
    check_size,
    check_split,
    rng,
)
from .renderer import Episode, Renderer
from .scene import make_camera


def _fit_length(drawn: float, seconds: tuple[float, float]) -> float:
    """A length drawn from ``GESTURE_SECONDS`` moved to the same place in a family's own range.

    The draw stays the one every script has always made (so scripts of the nine default classes,
    whose range it is, keep their timelines bit for bit); a wave is just stretched to its range.
    """
    if seconds == GESTURE_SECONDS:
        return drawn
    lo, hi = GESTURE_SECONDS
    return seconds[0] + (drawn - lo) / (hi - lo) * (seconds[1] - seconds[0])


@dataclass(frozen=True)
class GestureEvent:
    """One scripted gesture: ``label`` is in progress for ``start_s <= t < end_s``."""

    label: str
    start_s: float
    end_s: float


class GestureScript:
    """A scripted live scene: gestures at known times, idle object in between.

    The background and camera stay the same for the whole script. Each gesture gets its own
    object, which fades in (in place) during the idle period before the gesture, holds still
    (with a little tremor), performs the gesture, holds, and fades out (in place) during the next
    idle period. So nothing that looks like a gesture happens outside ``timeline``; idle time is
    ``no_motion``. ``frame_at`` is random-access and deterministic.
    """

    def __init__(
        self,
        seed: int,
        *,
        duration_s: float,
        size: tuple[int, int] = (240, 320),
        fps: float = 30.0,
        split: str = "test",
        idle_s: tuple[float, float] = (0.8, 2.0),
        labels: Sequence[str] = CLASSES[:-1],
    ) -> None:
        seed, split = check_seed(seed), check_split(split)
        h, w = check_size(size)
        self.fps = check_fps(fps)
        self.size = (h, w)
        if not isinstance(duration_s, (int, float)) or not 0 < duration_s <= 24 * 3600:
            raise SyntheticError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
        try:
            lo, hi = (float(v) for v in idle_s)
        except (TypeError, ValueError):
            raise SyntheticError(f"idle_s must be (min_seconds, max_seconds), got {idle_s!r}") from None
        if not 0.4 <= lo <= hi <= 600:
            raise SyntheticError(f"idle_s must satisfy 0.4 <= min <= max (seconds), got {idle_s!r}: "
                                 "an idle period needs time for the object to fade out and in")
        labels = tuple(labels)
        bad = [x for x in labels if x not in PERFORMABLE]
        if not labels or bad:
            raise SyntheticError(f"labels must be a non-empty subset of {PERFORMABLE} (no_motion is what "
                                 f"plays between gestures), got {labels!r}")
        self.duration_s = float(duration_s)
        self.num_frames = int(round(self.duration_s * self.fps))
        short = min(h, w)

        camera = make_camera(rng(seed, split, S_CAMERA), split, h, w)
        avoid = camera.mean_color()
        rng_t = rng(seed, split, S_TIMELINE)
        events: list[GestureEvent] = []
        episodes: list[Episode] = []
        switch: list[float] = []
        bag: list[str] = []
        t = 0.0
        previous_end: float | None = None
        while True:
            idle = float(rng_t.uniform(lo, hi))
            length = float(rng_t.uniform(*GESTURE_SECONDS))
            if not bag:  # shuffle-bag: every label once per round, in random order
                bag = [str(x) for x in rng_t.permutation(labels)]
            label = bag.pop()
            length = _fit_length(length, gesture_seconds(label))
            if t + idle + length + 0.3 > self.duration_s:
                break  # (nothing is drawn after this, so drawing the label first changes no timeline)
            start, end = t + idle, t + idle + length
            k = len(events)
            fade = min(0.3, 0.2 * idle)
            if previous_end is None:
                fade_in, begin = None, 0.0
            else:  # hold, fade out the old object, fade in the new one, hold
                hold_after = (idle - 2 * fade) * float(rng_t.uniform(0.3, 0.7))
                out_end = previous_end + hold_after + fade
                episodes[-1] = replace(episodes[-1], fade_out=(out_end - fade, out_end))
                fade_in, begin = (out_end, out_end + fade), out_end
            gesture_of = GESTURES[label]
            rng_m = rng(seed, split, S_MOTION, k)
            motion = make_motion(gesture_of.family, rng_m, h, w)
            episodes.append(Episode(
                key=(k,),
                appearance=make_appearance(rng(seed, split, S_APPEARANCE, k), split, avoid),
                motion=motion.reversed_() if gesture_of.backwards else motion,
                gesture=(start, end),
                fade_in=fade_in,
                fade_out=None,
                jitter=make_jitter(rng_m, short),
            ))
            switch.append(begin)
            events.append(GestureEvent(label, start, end))
            previous_end, t = end, end
        if not episodes:  # too short for a gesture: an idle object the whole time
            rng_m = rng(seed, split, S_MOTION, 0)
            episodes.append(Episode((0,), make_appearance(rng(seed, split, S_APPEARANCE, 0), split, avoid),
                                    make_motion("idle", rng_m, h, w), (0.0, 0.0), None, None,
                                    make_jitter(rng_m, short)))
            switch.append(0.0)
        self.timeline: tuple[GestureEvent, ...] = tuple(events)
        self._starts = [e.start_s for e in events]
        self._renderer = Renderer(camera, episodes, switch, (h, w), self.fps)

    def frame_at(self, index: int) -> np.ndarray:
        """Frame ``index`` (time ``index / fps``) as H x W x 3 uint8 BGR."""
        return self._renderer.frame(check_frame_index(index, self.num_frames))

    def object_pose_at(self, index: int) -> tuple[float, float, float, float, float]:
        """Ground truth for frame ``index``: ``(cx, cy, size, angle, opacity)`` of the object.

        Pixels / radians (angle grows clockwise on screen), camera shake included. For checking
        that nothing moves outside the timeline, or for scoring a localiser.
        """
        return self._renderer.pose_at(check_frame_index(index, self.num_frames) / self.fps)

    def label_at(self, t_s: float) -> str:
        """Ground-truth label at time ``t_s`` seconds ("no_motion" outside every gesture)."""
        i = bisect.bisect_right(self._starts, t_s) - 1
        if i >= 0 and t_s < self.timeline[i].end_s:
            return self.timeline[i].label
        return "no_motion"
