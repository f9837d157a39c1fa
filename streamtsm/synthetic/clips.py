"""One training clip: a gesture (or an idle behaviour) of one object over one scene.

With the same seed every class shows the same object on the same background (only the motion
stream depends on the label's family), so appearance carries no information about the label,
and each reversed class is exactly its partner's pose sequence played backwards (up to camera
noise, shake and lighting). ``no_motion`` clips show an idle object doing one of the things a
live script shows between gestures (``IDLE_BEHAVIOURS``).

Cost (2-core dev box): about 12 ms for a 120x160 clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .appearance import make_appearance
from .motion import GESTURES, MOTION_FAMILIES, TREMOR, label_name, make_jitter, make_motion
from .params import (
    S_APPEARANCE,
    S_CAMERA,
    S_IDLE,
    S_MOTION,
    S_SECOND_OBJECT,
    SyntheticError,
    check_fps,
    check_seed,
    check_size,
    check_split,
    rng,
)
from .renderer import Episode, Renderer
from .scene import make_camera

Interval = tuple[float, float]


@dataclass(frozen=True)
class ClipTruth:
    """What was rendered, for tests and for anyone validating the generator.

    ``poses``: (T, 5) float64 rows ``(cx, cy, size, angle, opacity)`` in frame pixels /
    radians (angle grows clockwise on screen), including camera shake.
    ``object_alpha`` / ``marker_alpha``: (T, H, W) uint8 coverage of the object and of its
    marker, warped exactly as the frame's object is (before blur and noise).
    ``plate``: (T, H, W, 3) uint8, the same frames rendered without the object (same shake,
    lighting, blur and noise), so ``frames != plate`` only near the object.
    """

    poses: np.ndarray
    object_alpha: np.ndarray
    marker_alpha: np.ndarray
    plate: np.ndarray
    shape: str
    texture: str
    behaviour: str | None


@dataclass(frozen=True)
class IdleTimes:
    """When an idle clip's lighting ramps ``(t0, t1, change)`` and its object fades in/out."""

    ramp: tuple[float, float, float] | None = None
    fade_in: Interval | None = None
    fade_out: Interval | None = None


@dataclass(frozen=True)
class IdleBehaviour:
    """``draw(rng, span_s)`` places the behaviour's changes in a clip of ``span_s`` seconds;
    ``tremor`` is the hand jitter's strength; ``replaces`` brings in a second object as the first
    fades out."""

    draw: Callable[[np.random.Generator, float], IdleTimes]
    tremor: tuple[float, float] = TREMOR
    replaces: bool = False


def _lighting(r: np.random.Generator, span: float) -> IdleTimes:
    t0 = r.uniform(0, 0.3) * span
    change = r.uniform(0.2, 0.45) * (1 if r.uniform() < 0.5 else -1)
    return IdleTimes(ramp=(t0, t0 + r.uniform(0.5, 0.7) * span, change))


def _fade_in(r: np.random.Generator, span: float) -> IdleTimes:
    t0 = r.uniform(0, 0.3) * span
    return IdleTimes(fade_in=(t0, t0 + r.uniform(0.3, 0.6) * span))


def _fade_out(r: np.random.Generator, span: float) -> IdleTimes:
    t0 = r.uniform(0.1, 0.4) * span
    return IdleTimes(fade_out=(t0, t0 + r.uniform(0.3, 0.55) * span))


def _replace(r: np.random.Generator, span: float) -> IdleTimes:
    mid = r.uniform(0.4, 0.6) * span
    fade = r.uniform(0.15, 0.35) * span
    return IdleTimes(fade_out=(mid - fade, mid))


# The order is part of the random draw (a behaviour is picked by its position): append only.
IDLE_BEHAVIOURS: dict[str, IdleBehaviour] = {
    "still": IdleBehaviour(lambda r, span: IdleTimes()),
    "jitter": IdleBehaviour(lambda r, span: IdleTimes(), tremor=(0.008, 0.02)),
    "lighting": IdleBehaviour(_lighting),
    "fade_in": IdleBehaviour(_fade_in),
    "fade_out": IdleBehaviour(_fade_out),
    "replace": IdleBehaviour(_replace, replaces=True),
}


@dataclass(frozen=True)
class ClipPlan:
    """A clip ready to render: ``renderer.frame(i)`` for ``i < num_frames`` is the clip's frame ``i``.

    The renderer is random-access by time and holds the last pose after the gesture (with tremor),
    so frames past ``num_frames`` continue the clip's idle ending: what the synthetic performer
    shows between takes. ``gesture_frames`` = (first, end) frame indices of the gesture (end
    exclusive; (0, 0) for ``no_motion``).
    """

    renderer: Renderer
    num_frames: int
    gesture_frames: tuple[int, int]
    shape: str
    texture: str
    behaviour: str | None


def plan_clip(
    label: str | int,
    seed: int,
    *,
    size: tuple[int, int] = (120, 160),
    fps: float = 30.0,
    duration_s: float | None = None,
    split: str = "train",
    lead_in_s: float = 0.0,
    lead_out_s: float = 0.0,
    max_duration_s: float | None = None,
) -> ClipPlan:
    """Everything :func:`render_clip` draws, without rendering the frames (see there).

    ``max_duration_s`` caps the drawn gesture length (when ``duration_s`` is None): the
    performer fits a gesture into a take of fixed length with it.
    """
    name = label_name(label)
    seed, split = check_seed(seed), check_split(split)
    h, w = check_size(size)
    fps = check_fps(fps)
    for what, value in (("lead_in_s", lead_in_s), ("lead_out_s", lead_out_s)):
        if not isinstance(value, (int, float)) or not 0 <= value <= 30:
            raise SyntheticError(f"{what} must be between 0 and 30 seconds, got {value!r}")
    gesture_of = GESTURES[name]
    family = MOTION_FAMILIES[gesture_of.family]
    rng_m = rng(seed, split, S_MOTION, family.code)
    drawn = float(rng_m.uniform(*family.seconds))  # drawn first, identical for a label pair
    if duration_s is None:
        duration_s = drawn if max_duration_s is None else min(drawn, max_duration_s)
    if not isinstance(duration_s, (int, float)) or not 0 < duration_s <= 30:
        raise SyntheticError(f"duration_s must be in (0, 30] seconds (gestures last 0.5-2 s), got {duration_s!r}")
    n_gesture = max(2, int(round(duration_s * fps)))
    n_in, n_out = int(round(lead_in_s * fps)), int(round(lead_out_s * fps))
    n_total = n_in + n_gesture + n_out
    short = min(h, w)

    camera = make_camera(rng(seed, split, S_CAMERA), split, h, w)
    appearance = make_appearance(rng(seed, split, S_APPEARANCE), split, camera.mean_color())
    motion = make_motion(gesture_of.family, rng_m, h, w)
    if gesture_of.backwards:
        motion = motion.reversed_()
    rng_idle = rng(seed, split, S_IDLE, family.code)
    end_s = (n_total - 1) / fps
    behaviour: str | None = None
    idle: IdleBehaviour | None = None
    fade_in = fade_out = None
    if gesture_of.family == "idle":
        behaviour = tuple(IDLE_BEHAVIOURS)[int(rng_idle.integers(len(IDLE_BEHAVIOURS)))]
        idle = IDLE_BEHAVIOURS[behaviour]
        jitter = make_jitter(rng_idle, short, idle.tremor)
        gesture = (0.0, 0.0)
        times = idle.draw(rng_idle, max(end_s, 1 / fps))
        if times.ramp is not None:
            camera = replace(camera, ramp=times.ramp)
        fade_in, fade_out = times.fade_in, times.fade_out
        gesture_frames = (0, 0)
    else:
        jitter = make_jitter(rng_idle, short)
        gesture = (n_in / fps, (n_in + n_gesture - 1) / fps)
        gesture_frames = (n_in, n_in + n_gesture)
        # A long idle lead-in may begin with the object fading in, a long lead-out may end with it
        # fading out: the transitions a live script shows between gestures.
        if lead_in_s >= 0.6 and rng_idle.uniform() < 0.4:
            fade_in = (0.0, min(0.3, lead_in_s / 2))
        if lead_out_s >= 0.6 and rng_idle.uniform() < 0.4:
            fade_out = (end_s - min(0.3, lead_out_s / 2), end_s)
    episodes = [Episode((0,), appearance, motion, gesture, fade_in, fade_out, jitter)]
    switch = [0.0]
    if idle is not None and idle.replaces:
        assert fade_out is not None
        rng2 = rng(seed, split, S_SECOND_OBJECT)
        second = Episode((1,), make_appearance(rng2, split, camera.mean_color()), make_motion("idle", rng2, h, w),
                         (0.0, 0.0), (fade_out[1], fade_out[1] + (fade_out[1] - fade_out[0])), None,
                         make_jitter(rng2, short))
        episodes.append(second)
        switch.append(fade_out[1])
    renderer = Renderer(camera, episodes, switch, (h, w), fps)
    return ClipPlan(renderer, n_total, gesture_frames, appearance.shape, appearance.texture_name, behaviour)


def render_clip(
    label: str | int,
    seed: int,
    *,
    size: tuple[int, int] = (120, 160),
    fps: float = 30.0,
    duration_s: float | None = None,
    split: str = "train",
    lead_in_s: float = 0.0,
    lead_out_s: float = 0.0,
    return_truth: bool = False,
) -> np.ndarray | tuple[np.ndarray, ClipTruth]:
    """Render one gesture clip as ``(T, H, W, 3)`` uint8 BGR frames.

    ``size`` is (height, width). ``duration_s`` is the gesture's length (default: drawn from
    its family's range, 0.5-1.5 s for :data:`CLASSES`); ``lead_in_s``/``lead_out_s`` add idle
    frames of the same scene before/after it (the object may fade in at the start of a long
    lead-in or out at the end of a long lead-out, as between gestures of a live script). For
    ``no_motion`` the whole clip is one idle behaviour. The seed fixes the object and the
    background for every label, so ``render_clip("swipe_right", s)`` is
    ``render_clip("swipe_left", s)`` played backwards. With ``return_truth`` also returns a
    :class:`ClipTruth`.
    """
    plan = plan_clip(label, seed, size=size, fps=fps, duration_s=duration_s, split=split, lead_in_s=lead_in_s,
                     lead_out_s=lead_out_s)
    renderer, n_total = plan.renderer, plan.num_frames
    frames = np.stack([renderer.frame(i) for i in range(n_total)])
    if not return_truth:
        return frames
    parts = [renderer.truth(i) for i in range(n_total)]
    truth = ClipTruth(
        poses=np.stack([p[0] for p in parts]),
        object_alpha=np.stack([p[1] for p in parts]),
        marker_alpha=np.stack([p[2] for p in parts]),
        plate=np.stack([p[3] for p in parts]),
        shape=plan.shape,
        texture=plan.texture,
        behaviour=plan.behaviour,
    )
    return frames, truth
