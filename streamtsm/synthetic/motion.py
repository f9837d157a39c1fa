"""Gesture motions: the class vocabulary, one drawing function per motion family, hand tremor.

A label names a motion family and a direction (``GESTURES``); a family draws a path in its
forward direction (left, up, in, clockwise) and the reverse label plays the same path
backwards, so a label pair drawn from one seed differs only in direction. Families live in
``MOTION_FAMILIES`` (a table, not a chain of ifs): a new gesture is a drawing function, a
family entry with an unused random-stream code, and a ``GESTURES`` row.

Conventions: directions are in image coordinates (left = x decreasing, up = y decreasing,
clockwise as seen on screen: the angle grows clockwise because y points down). A gesture lasts
0.5-1.5 s; swipes travel 30-70 % of the frame along their axis; zooms change the object's linear
size by 1.6-3x; rotations turn 90-270 degrees. The object's size (the diameter of the disc that
holds its shape) is 15-40 % of the frame's long side (a zoom's large end goes up to 70 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Protocol

import numpy as np

from .params import SyntheticError

CLASSES: tuple[str, ...] = (
    "swipe_left",
    "swipe_right",
    "swipe_up",
    "swipe_down",
    "zoom_in",
    "zoom_out",
    "rotate_cw",
    "rotate_ccw",
    "no_motion",
)

GESTURE_SECONDS = (0.5, 1.5)
SWIPE_TRAVEL = (0.30, 0.70)  # fraction of the frame along the swipe axis
ZOOM_FACTOR = (1.6, 3.0)  # linear size change
ROTATION_DEGREES = (90.0, 270.0)
OBJECT_SIZE = (0.15, 0.40)  # diameter of the object's disc, fraction of the frame's long side


class Motion(Protocol):
    """A gesture as a path over progress ``p`` in [0, 1] (what the renderer needs of one)."""

    def pose(self, p: float) -> tuple[float, float, float, float]:
        """``(cx, cy, size, angle)`` at progress ``p``."""

    def reversed_(self) -> "Motion":
        """The same path played backwards."""

    def max_size(self) -> float:
        """The largest size reached (the sprite is rasterised at this size)."""


@dataclass(frozen=True)
class EasedPath:
    """A gesture as a path from pose 0 to pose 1; ``reversed_`` plays it backwards.

    pose(p) at progress p in [0, 1]: centre c0 -> c1 plus a sideways arc, size s0 -> s1
    (geometric: a zoom has a constant rate) with a wobble, angle a0 -> a1. The easing and the
    arc/wobble terms are symmetric under p -> 1 - p, so the reverse is exactly the partner class.
    """

    c0: tuple[float, float]
    c1: tuple[float, float]
    s0: float
    s1: float
    a0: float
    a1: float
    arc: tuple[float, float]
    wobble: float
    ease_mix: float

    def reversed_(self) -> "EasedPath":
        return replace(self, c0=self.c1, c1=self.c0, s0=self.s1, s1=self.s0, a0=self.a1, a1=self.a0)

    def pose(self, p: float) -> tuple[float, float, float, float]:
        p = min(max(p, 0.0), 1.0)
        minjerk = p * p * p * (10 - 15 * p + 6 * p * p)
        e = (1 - self.ease_mix) * p + self.ease_mix * minjerk
        bump = math.sin(math.pi * e)
        cx = self.c0[0] + (self.c1[0] - self.c0[0]) * e + self.arc[0] * bump
        cy = self.c0[1] + (self.c1[1] - self.c0[1]) * e + self.arc[1] * bump
        size = self.s0 * (self.s1 / self.s0) ** e * (1 + self.wobble * bump)
        return cx, cy, size, self.a0 + (self.a1 - self.a0) * e

    def max_size(self) -> float:
        return max(self.s0, self.s1) * (1 + abs(self.wobble))


# A family's drawing function: (rng, frame height, frame width, initial angle) -> forward motion.
DrawMotion = Callable[[np.random.Generator, int, int, float], Motion]


def _swipe(horizontal: bool) -> DrawMotion:
    def draw(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
        u = rng.uniform
        along, across = (w, h) if horizontal else (h, w)
        travel = u(*SWIPE_TRAVEL) * along
        start = u(0.1 * along + travel, 0.9 * along)  # forward = decreasing coordinate
        side = u(0.3, 0.7) * across
        drift = u(-0.06, 0.06) * across
        arc = u(-0.05, 0.05) * across
        size = u(*OBJECT_SIZE) * max(h, w)
        if horizontal:
            c0, c1, arc_v = (start, side), (start - travel, side + drift), (0.0, arc)
        else:
            c0, c1, arc_v = (side, start), (side + drift, start - travel), (arc, 0.0)
        return EasedPath(c0, c1, size, size, angle0, angle0 + u(-0.15, 0.15), arc_v, u(-0.08, 0.08), u(0.5, 1.0))

    return draw


def _zoom(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
    u = rng.uniform
    factor = u(*ZOOM_FACTOR)
    small = u(OBJECT_SIZE[0], max(OBJECT_SIZE[0], min(OBJECT_SIZE[1], 0.7 / factor))) * max(h, w)
    c0 = (u(0.35, 0.65) * w, u(0.35, 0.65) * h)
    c1 = (c0[0] + u(-0.04, 0.04) * w, c0[1] + u(-0.04, 0.04) * h)
    return EasedPath(c0, c1, small, small * factor, angle0, angle0 + u(-0.15, 0.15), (0.0, 0.0), 0.0, u(0.5, 1.0))


def _rotate(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
    u = rng.uniform
    turn = math.radians(u(*ROTATION_DEGREES))  # positive = clockwise on screen (y points down)
    size = u(0.2, OBJECT_SIZE[1]) * max(h, w)
    c0 = (u(0.3, 0.7) * w, u(0.3, 0.7) * h)
    c1 = (c0[0] + u(-0.03, 0.03) * w, c0[1] + u(-0.03, 0.03) * h)
    return EasedPath(c0, c1, size, size, angle0, angle0 + turn, (0.0, 0.0), u(-0.06, 0.06), u(0.5, 1.0))


def _idle(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
    u = rng.uniform
    c = (u(0.25, 0.75) * w, u(0.25, 0.75) * h)
    size = u(*OBJECT_SIZE) * max(h, w)
    return EasedPath(c, c, size, size, angle0, angle0, (0.0, 0.0), 0.0, 1.0)


@dataclass(frozen=True)
class MotionFamily:
    """``code``: the family's random-stream number (fixed forever: changing it changes every clip)."""

    code: int
    draw: DrawMotion


MOTION_FAMILIES: dict[str, MotionFamily] = {
    "swipe_h": MotionFamily(1, _swipe(horizontal=True)),
    "swipe_v": MotionFamily(2, _swipe(horizontal=False)),
    "zoom": MotionFamily(3, _zoom),
    "rotate": MotionFamily(4, _rotate),
    "idle": MotionFamily(5, _idle),
}


@dataclass(frozen=True)
class Gesture:
    """What a label does: a motion family, played forwards or backwards."""

    family: str
    backwards: bool = False


GESTURES: dict[str, Gesture] = {
    "swipe_left": Gesture("swipe_h"),
    "swipe_right": Gesture("swipe_h", backwards=True),
    "swipe_up": Gesture("swipe_v"),
    "swipe_down": Gesture("swipe_v", backwards=True),
    "zoom_in": Gesture("zoom"),
    "zoom_out": Gesture("zoom", backwards=True),
    "rotate_cw": Gesture("rotate"),
    "rotate_ccw": Gesture("rotate", backwards=True),
    "no_motion": Gesture("idle"),
}


def make_motion(family: str, rng: np.random.Generator, h: int, w: int) -> Motion:
    """Draw a gesture of ``family`` in its forward direction; every family starts at a random angle."""
    angle0 = rng.uniform(0, 2 * np.pi)
    return MOTION_FAMILIES[family].draw(rng, h, w, angle0)


#: Labels a live script can perform (everything but the idle family, which plays between them).
PERFORMABLE: tuple[str, ...] = tuple(name for name, g in GESTURES.items() if g.family != "idle")


def label_name(label: str | int) -> str:
    """A gesture name from a name in :data:`GESTURES` or an index into :data:`CLASSES`."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if 0 <= int(label) < len(CLASSES):
            return CLASSES[int(label)]
        raise SyntheticError(f"label index {label} is out of range 0..{len(CLASSES) - 1}")
    if isinstance(label, str) and label in GESTURES:
        return label
    raise SyntheticError(f"unknown label {label!r}; use one of {', '.join(GESTURES)} or its index")


@dataclass(frozen=True)
class Jitter:
    """Hand tremor: a few small sinusoids of absolute time (px for x/y, radians for angle)."""

    amp: np.ndarray  # (3, 2)
    freq: np.ndarray  # (3, 2)
    phase: np.ndarray  # (3, 2)

    def at(self, t: float) -> np.ndarray:
        return (self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)).sum(1)


TREMOR = (0.001, 0.005)  # the light tremor of a hand holding still, fraction of the short side


def make_jitter(rng: np.random.Generator, short: int, strength: tuple[float, float] = TREMOR) -> Jitter:
    amp = np.empty((3, 2))
    amp[:2] = rng.uniform(*strength, (2, 2)) * short / 2
    amp[2] = rng.uniform(0, math.radians(1.0), 2)
    return Jitter(amp, rng.uniform(0.7, 5.0, (3, 2)), rng.uniform(0, 2 * np.pi, (3, 2)))
