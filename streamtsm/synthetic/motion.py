"""Gesture motions: the class vocabulary, one drawing function per motion family, hand tremor.

A label names a motion family and a direction (``GESTURES``); a family draws a path in its
forward direction (left, up, in, clockwise) and the reverse label plays the same path
backwards, so a label pair drawn from one seed differs only in direction. Families live in
``MOTION_FAMILIES`` (a table, not a chain of ifs): a new gesture is a drawing function, a
family entry with an unused random-stream code, and a ``GESTURES`` row.

``CLASSES`` are the embedded default model's nine classes; ``EXTRA_GESTURES`` (circles, a wave,
a push) are gestures that model never saw, for recording and fine-tuning (``streamtsm record``
with the synthetic performer) -- never part of the default model's training data.

Conventions: directions are in image coordinates (left = x decreasing, up = y decreasing,
clockwise as seen on screen: the angle grows clockwise because y points down). A gesture of
``CLASSES`` lasts 0.5-1.5 s; swipes travel 30-70 % of the frame along their axis; zooms change
the object's linear size by 1.6-3x; rotations turn 90-270 degrees. The object's size (the
diameter of the disc that holds its shape) is 15-40 % of the frame's long side (a zoom's large
end goes up to 70 %). The extra gestures: a circle carries the object once round a loop
(300-400 degrees, radius 18-30 % of the short side) without turning it, in 0.8-1.6 s; a wave
sways it side to side 1.5-2.5 times (8-16 % of the width, tilting 12-30 degrees with the sway)
in 1.0-2.0 s, at most 2.5 Hz so a 10 fps model sees every swing; a push brings it towards the
camera and back (1.6-2.5x larger at the middle) in 0.6-1.2 s.
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
CIRCLE_DEGREES = (300.0, 400.0)
CIRCLE_RADIUS = (0.18, 0.30)  # fraction of the frame's short side
WAVE_CYCLES = (1.5, 2.5)
WAVE_AMPLITUDE = (0.08, 0.16)  # fraction of the frame's width, each side of the rest position
WAVE_TILT_DEGREES = (12.0, 30.0)
PUSH_FACTOR = (1.6, 2.5)  # linear size at the middle of the push, relative to its start


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


@dataclass(frozen=True)
class Backwards:
    """Any motion played backwards (for families whose path is not an :class:`EasedPath`)."""

    forward: Motion

    def pose(self, p: float) -> tuple[float, float, float, float]:
        return self.forward.pose(1.0 - min(max(p, 0.0), 1.0))

    def reversed_(self) -> Motion:
        return self.forward

    def max_size(self) -> float:
        return self.forward.max_size()


def _min_jerk_mix(p: float, ease_mix: float) -> float:
    """Progress eased like a hand: a mix of constant speed and a minimum-jerk profile."""
    p = min(max(p, 0.0), 1.0)
    return (1 - ease_mix) * p + ease_mix * p * p * p * (10 - 15 * p + 6 * p * p)


@dataclass(frozen=True)
class LoopPath:
    """The object carried round an ellipse (a circle drawn in the air), its orientation nearly fixed.

    pose(p): centre at ``centre + radii * (cos, sin)(phase0 + sweep * e)``; ``sweep > 0`` goes
    clockwise on screen (y points down). The angle drifts from ``a0`` to ``a1`` only a little,
    so a loop is a path, not a rotation of the object (that is ``rotate_cw``).
    """

    centre: tuple[float, float]
    radii: tuple[float, float]
    phase0: float
    sweep: float
    size: float
    a0: float
    a1: float
    ease_mix: float

    def pose(self, p: float) -> tuple[float, float, float, float]:
        e = _min_jerk_mix(p, self.ease_mix)
        phase = self.phase0 + self.sweep * e
        cx = self.centre[0] + self.radii[0] * math.cos(phase)
        cy = self.centre[1] + self.radii[1] * math.sin(phase)
        return cx, cy, self.size, self.a0 + (self.a1 - self.a0) * e

    def reversed_(self) -> Motion:
        return Backwards(self)

    def max_size(self) -> float:
        return self.size


@dataclass(frozen=True)
class SwayPath:
    """A wave: side-to-side sway about a rest pose, tilting with it, fading in and out of rest.

    pose(p): x = rest + amplitude * env(p) * sin(2 pi cycles p), the angle tilts by ``tilt``
    in phase with the sway, and the object rises a little at each end of a swing (a hand
    pivoting at the wrist). ``env`` is 0 at both ends, so the wave starts and ends at rest.
    """

    rest: tuple[float, float]
    amplitude: float
    lift: float
    tilt: float
    cycles: float
    size: float
    a0: float

    def pose(self, p: float) -> tuple[float, float, float, float]:
        p = min(max(p, 0.0), 1.0)
        env = math.sin(math.pi * p) ** 0.5
        swing = env * math.sin(2 * math.pi * self.cycles * p)
        cx = self.rest[0] + self.amplitude * swing
        cy = self.rest[1] - self.lift * swing * swing
        return cx, cy, self.size, self.a0 + self.tilt * swing

    def reversed_(self) -> Motion:
        return Backwards(self)

    def max_size(self) -> float:
        return self.size


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


def _circle(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
    u = rng.uniform
    short = min(h, w)
    r = u(*CIRCLE_RADIUS) * short
    radii = (r * u(0.85, 1.15), r * u(0.85, 1.15))  # a hand's circle is never quite round
    margin = 0.08 * short
    centre = (u(radii[0] + margin, w - radii[0] - margin), u(radii[1] + margin, h - radii[1] - margin))
    size = u(0.12, 0.25) * max(h, w)
    sweep = math.radians(u(*CIRCLE_DEGREES))  # positive = clockwise on screen
    return LoopPath(centre, radii, u(0, 2 * np.pi), sweep, size, angle0, angle0 + u(-0.2, 0.2), u(0.3, 0.8))


def _wave(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
    u = rng.uniform
    amplitude = u(*WAVE_AMPLITUDE) * w
    rest = (u(0.5 * w - (0.4 * w - amplitude), 0.5 * w + (0.4 * w - amplitude)), u(0.3, 0.7) * h)
    tilt = math.radians(u(*WAVE_TILT_DEGREES)) * (1 if u() < 0.5 else -1)
    size = u(0.15, 0.30) * max(h, w)
    return SwayPath(rest, amplitude, u(0.0, 0.06) * h, tilt, u(*WAVE_CYCLES), size, angle0)


def _push(rng: np.random.Generator, h: int, w: int, angle0: float) -> Motion:
    u = rng.uniform
    grow = u(*PUSH_FACTOR) - 1.0  # EasedPath's wobble: size * (1 + grow * sin(pi * e)), peak mid-gesture
    small = u(OBJECT_SIZE[0], max(OBJECT_SIZE[0], min(0.3, 0.7 / (1 + grow)))) * max(h, w)
    c0 = (u(0.35, 0.65) * w, u(0.35, 0.65) * h)
    c1 = (c0[0] + u(-0.03, 0.03) * w, c0[1] + u(-0.03, 0.03) * h)
    arc = (u(-0.03, 0.03) * w, u(-0.03, 0.03) * h)
    return EasedPath(c0, c1, small, small, angle0, angle0 + u(-0.1, 0.1), arc, grow, u(0.3, 0.8))


@dataclass(frozen=True)
class MotionFamily:
    """``code``: the family's random-stream number (fixed forever: changing it changes every clip).

    ``seconds``: the range a gesture's length is drawn from (a wave takes longer than a swipe).
    """

    code: int
    draw: DrawMotion
    seconds: tuple[float, float] = GESTURE_SECONDS


MOTION_FAMILIES: dict[str, MotionFamily] = {
    "swipe_h": MotionFamily(1, _swipe(horizontal=True)),
    "swipe_v": MotionFamily(2, _swipe(horizontal=False)),
    "zoom": MotionFamily(3, _zoom),
    "rotate": MotionFamily(4, _rotate),
    "idle": MotionFamily(5, _idle),
    "circle": MotionFamily(6, _circle, seconds=(0.8, 1.6)),
    "wave": MotionFamily(7, _wave, seconds=(1.0, 2.0)),
    "push": MotionFamily(8, _push, seconds=(0.6, 1.2)),
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
    # Gestures the embedded default model never saw (not in CLASSES): for recording and fine-tuning.
    "circle_cw": Gesture("circle"),
    "circle_ccw": Gesture("circle", backwards=True),
    "wave": Gesture("wave"),
    "push": Gesture("push"),
}

#: The gestures outside :data:`CLASSES`: what ``streamtsm record`` with the synthetic performer
#: is for (the default model's training data never contains them).
EXTRA_GESTURES: tuple[str, ...] = tuple(name for name in GESTURES if name not in CLASSES)


def gesture_seconds(label: str) -> tuple[float, float]:
    """The range of a gesture's length in seconds (its motion family's)."""
    return MOTION_FAMILIES[GESTURES[label].family].seconds


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
