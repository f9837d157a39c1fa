"""Frames from a camera and a sequence of episodes: random access by frame index.

An episode is one object's life on screen (fade in, idle, the gesture, idle, fade out); the
renderer finds the episode that owns time ``index / fps``, draws it over the shaken plate and
lets the camera finish the frame. Both clips and live scripts are rendered this way.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .appearance import Appearance
from .motion import Jitter, Motion
from .params import smoothstep
from .scene import Camera
from .sprite import Sprite, coverage, draw_sprite, rasterise

FivePose = tuple[float, float, float, float, float]  # (cx, cy, size, angle, opacity)


@dataclass(frozen=True)
class Episode:
    """One object's life on screen: appear, idle, (gesture), idle, disappear."""

    key: tuple[int, ...]  # identifies the sprite cache entry
    appearance: Appearance
    motion: Motion
    gesture: tuple[float, float]  # (start, end) seconds; start == end means no gesture
    fade_in: tuple[float, float] | None
    fade_out: tuple[float, float] | None
    jitter: Jitter

    def pose(self, t: float) -> FivePose:
        g0, g1 = self.gesture
        p = 0.0 if g1 <= g0 else (t - g0) / (g1 - g0)
        cx, cy, size, angle = self.motion.pose(p)
        jx, jy, ja = self.jitter.at(t)
        opacity = 1.0
        if self.fade_in is not None:
            opacity *= smoothstep((t - self.fade_in[0]) / max(self.fade_in[1] - self.fade_in[0], 1e-6))
        if self.fade_out is not None:
            opacity *= 1 - smoothstep((t - self.fade_out[0]) / max(self.fade_out[1] - self.fade_out[0], 1e-6))
        return cx + jx, cy + jy, size, angle + ja, opacity


class Renderer:
    """Frame ``i`` at time ``i / fps``: camera plate + the episode that owns that time.

    ``switch_s[k]`` is the time from which ``episodes[k]`` is on screen.
    """

    def __init__(self, camera: Camera, episodes: Sequence[Episode], switch_s: Sequence[float],
                 size: tuple[int, int], fps: float) -> None:
        self.camera, self.episodes, self.switch_s = camera, tuple(episodes), tuple(switch_s)
        self.h, self.w = size
        self.fps = fps
        self._sprites: dict[tuple[int, ...], Sprite] = {}

    def _sprite(self, ep: Episode) -> Sprite:
        sprite = self._sprites.get(ep.key)
        if sprite is None:
            sprite = rasterise(ep.appearance, int(math.ceil(ep.motion.max_size())) + 2, self.camera.tint)
            if len(self._sprites) >= 4:  # live scripts visit episodes in order: keep a few
                self._sprites.pop(next(iter(self._sprites)))
            self._sprites[ep.key] = sprite
        return sprite

    def _state(self, t: float) -> tuple[Episode, FivePose, tuple[int, int]]:
        ep = self.episodes[max(bisect.bisect_right(self.switch_s, t) - 1, 0)]
        dx, dy = self.camera.shake(t)
        cx, cy, size, angle, opacity = ep.pose(t)
        return ep, (cx - dx, cy - dy, size, angle, opacity), (dx, dy)

    def pose_at(self, t: float) -> FivePose:
        """The object's pose on screen at ``t`` seconds (camera shake included)."""
        return self._state(t)[1]

    def frame(self, index: int) -> np.ndarray:
        t = index / self.fps
        ep, pose, (dx, dy) = self._state(t)
        frame = self.camera.plate(dx, dy, self.h, self.w)
        if pose[4] > 1e-3:
            draw_sprite(frame, self._sprite(ep), pose)
        return self.camera.finish(frame, index, t)

    def truth(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pose, object coverage, marker coverage, the frame without the object) of frame ``index``."""
        t = index / self.fps
        ep, pose, (dx, dy) = self._state(t)
        plate = self.camera.plate(dx, dy, self.h, self.w)
        obj, marker = coverage(self._sprite(ep), pose, self.h, self.w)
        return np.array(pose), obj, marker, self.camera.finish(plate, index, t)
