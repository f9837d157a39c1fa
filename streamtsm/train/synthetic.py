"""Procedural motion gestures: training clips for the default model and a scripted live source.

Why this exists
---------------
The embedded default model must recognise *motion* (a swipe, a zoom, a turn), not what the
moving thing looks like. So every clip is a random textured object over a random background,
and the only thing that tells the classes apart is how the object moves. With the same seed,
every class shows the same object on the same background (``write_dataset`` renders clip ``i``
of every class from one seed), so appearance carries no information about the label. The same
renderer drives the ``synthetic`` camera source: a :class:`GestureScript` plays gestures at
known times, which gives an end-to-end test of the recognizer a ground-truth timeline.

numpy + OpenCV only (no torch): the live source is on the runtime path.

Public API
----------
``CLASSES``
    ``("swipe_left", "swipe_right", "swipe_up", "swipe_down", "zoom_in", "zoom_out",
    "rotate_cw", "rotate_ccw", "no_motion")`` -- label index = position in this tuple.
``SHAPE_FAMILIES``, ``TEXTURE_FAMILIES``
    ``{"train": (...), "test": (...)}``; the two splits share no family (see below).
``GestureEvent(label, start_s, end_s)``
    One gesture of a script's ground-truth timeline.
``ClipTruth``
    Ground truth returned by ``render_clip(..., return_truth=True)``: per-frame poses, the
    object's and its marker's rendered coverage, and the same frames rendered without the object.
``render_clip(label, seed, *, size=(120, 160), fps=30.0, duration_s=None, split="train",
lead_in_s=0.0, lead_out_s=0.0, return_truth=False)``
    ``(T, H, W, 3)`` uint8 BGR; optional idle lead-in/lead-out around the gesture.
``GestureScript(seed, *, duration_s, size=(240, 320), fps=30.0, split="test",
idle_s=(0.8, 2.0), labels=CLASSES[:-1])``
    ``.timeline``, ``.num_frames``, ``.frame_at(index)``, ``.label_at(t_s)``,
    ``.object_pose_at(index)`` (ground-truth pose, for tests and scoring).
``write_dataset(root, *, clips_per_class, seed, split, size=(120, 160), fps=30.0,
fourcc="mp4v", lead_s=(0.1, 0.5), progress=True) -> Path``
    ``root/<class>/<class>_<i>.mp4`` + ``root/annotations.txt`` (mmaction2 VideoDataset
    lines ``relative/path.mp4 label_index``) + ``root/classes.txt`` + ``root/manifest.csv`` (seed
    and lead lengths of every clip); returns the annotation path.
``SyntheticError``
    Raised for bad arguments, with what was wrong and how to fix it.

Conventions
-----------
* Directions are in image coordinates of the frames: left = x decreasing, up = y decreasing,
  clockwise = clockwise as seen on screen (the pose angle grows clockwise because y points down).
* A gesture lasts 0.5-1.5 s; swipes travel 30-70 % of the frame along their axis; zooms change
  the object's linear size by 1.6-3x; rotations turn 90-270 degrees. The object's size (the
  diameter of the disc that holds its shape) is 15-40 % of the frame's long side (a zoom's
  large end goes up to 70 %). Each reversed class (right/left, down/up, out/in, ccw/cw)
  is exactly its partner's pose sequence played backwards, so for one seed the pair differs
  only by direction (up to per-frame camera noise, shake and lighting).
* ``no_motion`` is an idle object: still, jittering in place, under a slow lighting change,
  fading in or out in place, or being replaced (fade out, another object fades in elsewhere) --
  exactly the behaviours a live script shows between gestures.
* Every object carries an off-centre contrasting marker disc, and no shape is a circle, so a
  rotation is always visible.
* Determinism: everything derives from ``np.random.default_rng([seed, split_code, stream...])``;
  no global RNG. The split code is part of every stream, so a train and a test clip never share
  random draws even for the same integer seed (still: evaluate with seeds you never trained on).

Held-out split
--------------
=========  ============================================  ==================================
split      shapes                                        object textures
=========  ============================================  ==================================
train      arrow, rectangle, triangle, L-shape, star     solid, stripes, checker, gradient
test       irregular 5-8-gon, cross, blob, T-shape,      dots, blotches, rings, zigzag
           crescent
=========  ============================================  ==================================

Static distractor objects in the background use the same split's families. Background kinds
(gradient, smooth noise, clutter) are shared: they are not what the model must generalise over.

Cost (measured on the 2-core dev box, 320x240 live script, 3 x 60 s): mean 0.3 ms per frame,
p99 about 1 ms. Once per gesture, the first visible frame of a new object also rasterises its
texture (4-7 ms at that size), still inside a 30 fps frame budget. A 120x160 training clip
takes about 12 ms.
"""

from __future__ import annotations

import bisect
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

__all__ = [
    "CLASSES",
    "SHAPE_FAMILIES",
    "TEXTURE_FAMILIES",
    "SyntheticError",
    "GestureEvent",
    "ClipTruth",
    "render_clip",
    "GestureScript",
    "write_dataset",
]

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

SHAPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "train": ("arrow", "rectangle", "triangle", "l_shape", "star"),
    "test": ("polygon", "cross", "blob", "t_shape", "crescent"),
}
TEXTURE_FAMILIES: dict[str, tuple[str, ...]] = {
    "train": ("solid", "stripes", "checker", "gradient"),
    "test": ("dots", "blotches", "rings", "zigzag"),
}

GESTURE_SECONDS = (0.5, 1.5)
SWIPE_TRAVEL = (0.30, 0.70)  # fraction of the frame along the swipe axis
ZOOM_FACTOR = (1.6, 3.0)  # linear size change
ROTATION_DEGREES = (90.0, 270.0)
OBJECT_SIZE = (0.15, 0.40)  # diameter of the object's disc, fraction of the frame's long side

_SPLIT_CODE = {"train": 1, "test": 2}
# Which motion family each label uses and whether it plays that family backwards. A label and
# its reverse draw identical parameters, so the pair differs only in direction.
_FAMILY_OF = {
    "swipe_left": ("swipe_h", False),
    "swipe_right": ("swipe_h", True),
    "swipe_up": ("swipe_v", False),
    "swipe_down": ("swipe_v", True),
    "zoom_in": ("zoom", False),
    "zoom_out": ("zoom", True),
    "rotate_cw": ("rotate", False),
    "rotate_ccw": ("rotate", True),
    "no_motion": ("idle", False),
}
_FAMILY_CODE = {"swipe_h": 1, "swipe_v": 2, "zoom": 3, "rotate": 4, "idle": 5}
_IDLE_BEHAVIOURS = ("still", "jitter", "lighting", "fade_in", "fade_out", "replace")

# Random streams (the third entry of every seed sequence); named so that no two uses collide.
_S_CAMERA, _S_APPEARANCE, _S_MOTION, _S_IDLE, _S_TIMELINE, _S_SECOND_OBJECT = 1, 2, 3, 4, 5, 6


class SyntheticError(ValueError):
    """A bad argument to the synthetic generator; the message says what and how to fix it."""


@dataclass(frozen=True)
class GestureEvent:
    """One scripted gesture: ``label`` is in progress for ``start_s <= t < end_s``."""

    label: str
    start_s: float
    end_s: float


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


# --------------------------------------------------------------------------- validation


def _check_split(split: str) -> str:
    if split not in _SPLIT_CODE:
        raise SyntheticError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SyntheticError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SyntheticError(f"size must be (height, width), got {size!r}") from None
    if h < 32 or w < 32 or h > 4096 or w > 4096:
        raise SyntheticError(f"size (height, width) must be between 32 and 4096 pixels, got {size!r}")
    return h, w


def _check_fps(fps: float) -> float:
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 1.0 <= fps <= 240.0:
        raise SyntheticError(f"fps must be a number in [1, 240], got {fps!r}")
    return float(fps)


def _label_name(label: str | int) -> str:
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if 0 <= int(label) < len(CLASSES):
            return CLASSES[int(label)]
        raise SyntheticError(f"label index {label} is out of range 0..{len(CLASSES) - 1}")
    if isinstance(label, str) and label in CLASSES:
        return label
    raise SyntheticError(f"unknown label {label!r}; use one of {', '.join(CLASSES)} or its index")


def _rng(seed: int, split: str, stream: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE[split], stream, *extra])


# --------------------------------------------------------------------------- appearance


def _hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    """h in [0, 1), s and v in [0, 1] -> BGR float in 0..255."""
    px = np.array([[[int(h * 180) % 180, int(s * 255), int(v * 255)]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _regular_ring(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    ang = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(ang), np.sin(ang)], 1) * radius


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _shape_polygons(name: str, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Polygons (unnormalised coordinates) filled in order; value 255 adds, 0 cuts away."""
    u = rng.uniform
    if name == "arrow":
        shaft, width, head_len, head_w = u(1.0, 1.8), u(0.25, 0.45), u(0.5, 0.9), u(0.8, 1.3)
        pts = [(0, -width / 2), (shaft, -width / 2), (shaft, -head_w / 2), (shaft + head_len, 0),
               (shaft, head_w / 2), (shaft, width / 2), (0, width / 2)]
        return [(np.array(pts, float), 255)]
    if name == "rectangle":
        aspect = u(1.35, 2.5)
        return [(_rect(0, 0, aspect, 1.0), 255)]
    if name == "triangle":
        while True:  # a scalene triangle: no two gaps alike, none too thin
            gaps = rng.dirichlet([4, 4, 4]) * 2 * np.pi
            if gaps.min() > np.radians(70) and np.diff(np.sort(gaps)).min() > np.radians(12):
                break
        ang = np.cumsum(gaps)
        return [(np.stack([np.cos(ang), np.sin(ang)], 1), 255)]
    if name == "l_shape":
        a, b, t = u(1.0, 1.6), u(1.6, 2.2), u(0.45, 0.7)
        return [(np.array([(0, 0), (a, 0), (a, t), (t, t), (t, b), (0, b)], float), 255)]
    if name == "star":
        n, inner = int(rng.integers(5, 8)), u(0.4, 0.55)
        radii = np.tile([1.0, inner], n)
        radii[0] = u(1.3, 1.5)  # one long spike breaks the rotational symmetry
        ang = np.arange(2 * n) * np.pi / n
        return [(np.stack([np.cos(ang), np.sin(ang)], 1) * radii[:, None], 255)]
    if name == "polygon":
        n = int(rng.integers(5, 9))
        ang = np.sort((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n)
        radii = rng.uniform(0.6, 1.0, n)
        return [(np.stack([np.cos(ang), np.sin(ang)], 1) * radii[:, None], 255)]
    if name == "cross":
        t = u(0.35, 0.55)
        left, right, up, down = u(0.6, 1.0), u(1.3, 2.0), u(0.6, 1.1), u(0.9, 1.4)
        return [(_rect(-left, -t / 2, right, t / 2), 255), (_rect(-t / 2, -up, t / 2, down), 255)]
    if name == "blob":
        theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        r = np.ones_like(theta)
        for k in (1, 2, 3, 4):
            r += u(0.08, 0.22) * np.cos(k * theta + u(0, 2 * np.pi))
        r = np.maximum(r, 0.35)
        return [(np.stack([np.cos(theta), np.sin(theta)], 1) * r[:, None], 255)]
    if name == "t_shape":
        bar, t, stem = u(1.6, 2.4), u(0.4, 0.6), u(1.2, 1.9)
        off = u(-0.3, 0.3) * bar  # off-centre stem: no mirror symmetry either
        return [(_rect(-bar / 2, 0, bar / 2, t), 255), (_rect(off - t / 2, t, off + t / 2, t + stem), 255)]
    if name == "crescent":
        inner_r, offset = u(0.7, 0.85), u(0.4, 0.6)
        return [(_regular_ring(64), 255), (_regular_ring(64, inner_r) + [offset, u(-0.15, 0.15)], 0)]
    raise AssertionError(name)


def _normalise(polys: list[tuple[np.ndarray, int]], angle: float) -> list[tuple[np.ndarray, int]]:
    """Centre on the bounding box of the filled parts, rotate, and fit into radius 0.95."""
    filled = np.concatenate([p for p, v in polys if v])
    centre = (filled.min(0) + filled.max(0)) / 2
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    out = [((p - centre) @ rot.T, v) for p, v in polys]
    radius = max(np.linalg.norm(p, axis=1).max() for p, v in out if v)
    return [(p * (0.95 / radius), v) for p, v in out]


_Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (u, v) grids -> (S, S, 3) float32


def _mix(c0: np.ndarray, c1: np.ndarray, m: np.ndarray) -> np.ndarray:
    m = m[..., None].astype(np.float32)
    return c0 * (1 - m) + c1 * m


def _soft_square(phase: np.ndarray) -> np.ndarray:
    """Square wave in 0..1 with soft edges (less aliasing than a hard threshold)."""
    return np.clip(np.sin(2 * np.pi * phase) * 3.0, -1, 1) * 0.5 + 0.5


def _make_texture(name: str, rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> _Texture:
    u = rng.uniform
    if name == "solid":
        d = u(0, 2 * np.pi)
        return lambda x, y: c0 * (1 + 0.12 * (x * math.cos(d) + y * math.sin(d)))[..., None]
    if name == "stripes":
        d, period = u(0, np.pi), u(0.25, 0.6)
        return lambda x, y: _mix(c0, c1, _soft_square((x * math.cos(d) + y * math.sin(d)) / period))
    if name == "checker":
        d, cell = u(0, np.pi / 2), u(0.25, 0.5)

        def checker(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            a = (x * math.cos(d) + y * math.sin(d)) / (2 * cell)
            b = (-x * math.sin(d) + y * math.cos(d)) / (2 * cell)
            return _mix(c0, c1, (_soft_square(a) - 0.5) * (_soft_square(b) - 0.5) * 2 + 0.5)

        return checker
    if name == "gradient":
        d = u(0, 2 * np.pi)
        return lambda x, y: _mix(c0, c1, np.clip(0.5 + 0.5 * (x * math.cos(d) + y * math.sin(d)), 0, 1))
    if name == "dots":
        spacing, radius = u(0.3, 0.5), u(0.25, 0.38)
        ox, oy = u(0, 1, 2)

        def dots(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            fx = (x / spacing + ox) % 1.0 - 0.5
            fy = (y / spacing + oy) % 1.0 - 0.5
            return _mix(c0, c1, np.clip((radius - np.hypot(fx, fy)) * 12 + 0.5, 0, 1))

        return dots
    if name == "blotches":
        field = rng.uniform(0, 1, (5, 5)).astype(np.float32)

        def blotches(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            smooth = cv2.resize(field, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_CUBIC)
            return _mix(c0, c1, np.clip((smooth - 0.5) * 4 + 0.5, 0, 1))

        return blotches
    if name == "rings":
        cx, cy, period = u(-0.5, 0.5), u(-0.5, 0.5), u(0.25, 0.45)
        return lambda x, y: _mix(c0, c1, _soft_square(np.hypot(x - cx, y - cy) / period))
    if name == "zigzag":
        d, period, amp = u(0, np.pi), u(0.3, 0.5), u(0.15, 0.3)

        def zigzag(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            a = x * math.cos(d) + y * math.sin(d)
            b = -x * math.sin(d) + y * math.cos(d)
            tri = np.abs((b / (2 * amp)) % 1.0 - 0.5) * 2 * amp
            return _mix(c0, c1, _soft_square((a + tri) / period))

        return zigzag
    raise AssertionError(name)


@dataclass(frozen=True)
class _Appearance:
    """Resolution-independent description of one object (shape, texture, marker)."""

    shape: str
    texture_name: str
    polygons: tuple[tuple[np.ndarray, int], ...]
    texture: _Texture
    marker_uv: tuple[float, float]
    marker_radius: float
    marker_bgr: np.ndarray


def _rasterise_mask(polys: Sequence[tuple[np.ndarray, int]], s: int) -> np.ndarray:
    mask = np.zeros((s, s), np.uint8)
    for pts, value in polys:
        pix = ((pts + 1) / 2 * s - 0.5) * 16  # pixel-centre convention, 4 fractional bits
        cv2.fillPoly(mask, [np.round(pix).astype(np.int32)], int(value), cv2.LINE_AA, 4)
    return mask


def _make_appearance(rng: np.random.Generator, split: str, avoid_bgr: np.ndarray | None) -> _Appearance:
    shape = SHAPE_FAMILIES[split][int(rng.integers(len(SHAPE_FAMILIES[split])))]
    texture_name = TEXTURE_FAMILIES[split][int(rng.integers(len(TEXTURE_FAMILIES[split])))]
    polys = _normalise(_shape_polygons(shape, rng), rng.uniform(0, 2 * np.pi))
    for _ in range(12):  # an object that blends into its background teaches nothing
        hue = rng.uniform()
        c0 = _hsv_to_bgr(hue, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))
        if avoid_bgr is None or np.linalg.norm(c0 - avoid_bgr) > 90:
            break
    c1 = _hsv_to_bgr((hue + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.9))
    texture = _make_texture(texture_name, rng, c0, c1)
    # The marker: a disc well inside the shape and well away from its centroid.
    probe = 128
    mask = _rasterise_mask(polys, probe)
    inside = (mask > 127).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5) / (probe / 2)  # normalised units
    ys, xs = np.nonzero(inside)
    grid = (np.arange(probe) + 0.5) / probe * 2 - 1
    gx, gy = grid[xs], grid[ys]
    from_centroid = np.hypot(gx - gx.mean(), gy - gy.mean())
    room = dist[ys, xs]
    radius = float(min(rng.uniform(0.12, 0.18), 0.8 * room.max()))
    ok = (room >= radius * 1.1) & (from_centroid >= 0.3)
    if not ok.any():
        ok = room >= radius * 1.1
    if not ok.any():
        ok = room >= room.max() * 0.9
    # Prefer points far from the centroid (a long lever makes rotation obvious).
    candidates = np.nonzero(ok)[0]
    weights = from_centroid[candidates] ** 2 + 1e-6
    pick = candidates[rng.choice(len(candidates), p=weights / weights.sum())]
    lum = float(c0 @ np.array([0.114, 0.587, 0.299], np.float32))
    marker_bgr = np.array([20, 20, 20] if lum > 110 else [240, 240, 240], np.float32)
    if rng.uniform() < 0.5:
        marker_bgr = _hsv_to_bgr((hue + 0.5) % 1.0, 1.0, 0.15 if lum > 110 else 1.0)
    return _Appearance(shape, texture_name, tuple(polys), texture, (float(gx[pick]), float(gy[pick])),
                       radius, marker_bgr)


@dataclass(frozen=True)
class _Sprite:
    """An object rasterised at a few resolutions (a mip chain, so shrinking does not alias).

    levels[i] = (premultiplied BGRA uint8 (S_i, S_i, 4), marker coverage uint8 (S_i, S_i)).
    """

    levels: tuple[tuple[np.ndarray, np.ndarray], ...]

    def level_for(self, size_px: float) -> tuple[np.ndarray, np.ndarray]:
        """The smallest level that is still at least ``size_px`` wide (linear warp downsamples <= 2x)."""
        for bgra, marker in reversed(self.levels):
            if bgra.shape[0] >= size_px:
                return bgra, marker
        return self.levels[0]


def _rasterise(app: _Appearance, s: int, tint: np.ndarray) -> _Sprite:
    s = int(min(max(s, 16), 1024))
    grid = ((np.arange(s) + 0.5) / s * 2 - 1).astype(np.float32)
    x, y = np.meshgrid(grid, grid)
    color = np.clip(app.texture(x, y), 0, 255).astype(np.float32)
    marker = np.zeros((s, s), np.uint8)
    centre = ((np.array(app.marker_uv) + 1) / 2 * s - 0.5) * 16
    cv2.circle(marker, tuple(int(v) for v in np.round(centre)), int(round(app.marker_radius * s / 2 * 16)),
               255, -1, cv2.LINE_AA, 4)
    alpha = _rasterise_mask(app.polygons, s)
    marker = np.minimum(marker, alpha)
    m = marker[..., None].astype(np.float32) / 255
    color = (color * (1 - m) + app.marker_bgr * m) * tint
    a = alpha[..., None].astype(np.float32) / 255
    base = np.dstack([np.clip(color * a, 0, 255), alpha.astype(np.float32)]).astype(np.float32)
    levels = []
    level, mark = base, marker.astype(np.float32)
    while True:
        levels.append((np.round(level).astype(np.uint8), np.round(mark).astype(np.uint8)))
        side = level.shape[0] // 2
        if side < 12:
            break
        level = cv2.resize(base, (side, side), interpolation=cv2.INTER_AREA)
        mark = cv2.resize(marker.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    return _Sprite(tuple(levels))


def _sprite_matrix(side: int, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Affine map sprite pixel -> frame pixel: centre at (cx, cy), ``size`` px wide, turned ``angle``."""
    k = size / side
    c, s = math.cos(angle) * k, math.sin(angle) * k
    half = (side - 1) / 2
    return np.array([[c, -s, cx - c * half + s * half], [s, c, cy - s * half - c * half]], np.float64)


def _warp_roi(img: np.ndarray, m: np.ndarray, h: int, w: int, side: int) -> tuple[np.ndarray, int, int] | None:
    """Warp a sprite layer into the clipped bounding box of its footprint only (cheap)."""
    corners = np.array([[0, 0, 1], [side - 1, 0, 1], [0, side - 1, 1], [side - 1, side - 1, 1]], float) @ m.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    shifted = m.copy()
    shifted[:, 2] -= (x0, y0)
    out = cv2.warpAffine(img, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out, x0, y0


def _draw_sprite(dst: np.ndarray, sprite: _Sprite, pose: Sequence[float]) -> None:
    """Alpha-blend the sprite into ``dst`` (uint8 BGR, in place) at ``pose``."""
    cx, cy, size, angle, opacity = pose
    bgra, _ = sprite.level_for(size)
    side = bgra.shape[0]
    warped = _warp_roi(bgra, _sprite_matrix(side, cx, cy, size, angle), dst.shape[0], dst.shape[1], side)
    if warped is None:
        return
    layer, x0, y0 = warped
    roi = dst[y0:y0 + layer.shape[0], x0:x0 + layer.shape[1]]
    a = layer[..., 3:4].astype(np.float32) * (opacity / 255.0)
    roi[:] = np.clip(roi * (1.0 - a) + layer[..., :3] * np.float32(opacity) + 0.5, 0, 255).astype(np.uint8)


def _coverage(sprite: _Sprite, pose: Sequence[float], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame object and marker coverage (uint8) for ``pose``; for ClipTruth only."""
    cx, cy, size, angle, opacity = pose
    bgra, marker = sprite.level_for(size)
    side = bgra.shape[0]
    m = _sprite_matrix(side, cx, cy, size, angle)
    out = []
    for layer in (np.ascontiguousarray(bgra[..., 3]), marker):
        full = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out.append(np.round(full * opacity).astype(np.uint8))
    return out[0], out[1]


# --------------------------------------------------------------------------- camera + background


@dataclass(frozen=True)
class _Camera:
    """The static scene plate and everything the 'camera' adds per frame."""

    canvas: np.ndarray  # (H + 2m, W + 2m, 3) uint8, already tinted
    margin: int
    tint: np.ndarray  # (3,) float32, applied to sprites as they are rasterised
    shake_amp: np.ndarray  # (2, 2) px: axis x component
    shake_freq: np.ndarray  # (2, 2) Hz
    shake_phase: np.ndarray  # (2, 2)
    gain_base: float
    gain_amp: float
    gain_freq: float
    gain_phase: float
    ramp: tuple[float, float, float] | None  # (t0, t1, relative change) for a lighting change
    blur_sigma: float
    noise_pos: np.ndarray  # (K, H, W, 3) uint8
    noise_neg: np.ndarray
    noise_order: np.ndarray  # (P,) which noise frame each frame index uses

    def shake(self, t: float) -> tuple[int, int]:
        d = (self.shake_amp * np.sin(2 * np.pi * self.shake_freq * t + self.shake_phase)).sum(1)
        return int(round(d[0])), int(round(d[1]))

    def gain(self, t: float) -> float:
        g = self.gain_base * (1 + self.gain_amp * math.sin(2 * math.pi * self.gain_freq * t + self.gain_phase))
        if self.ramp is not None:
            t0, t1, change = self.ramp
            g *= 1 + change * _smoothstep((t - t0) / max(t1 - t0, 1e-6))
        return g

    def finish(self, frame: np.ndarray, index: int, t: float) -> np.ndarray:
        """Lighting, lens blur and sensor noise, in that order (as a camera would)."""
        frame = cv2.convertScaleAbs(frame, alpha=self.gain(t))
        if self.blur_sigma > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), self.blur_sigma)
        k = int(self.noise_order[index % len(self.noise_order)])
        frame = cv2.add(frame, self.noise_pos[k])
        return cv2.subtract(frame, self.noise_neg[k])


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _make_background(rng: np.random.Generator, split: str, h: int, w: int, short: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0 = _hsv_to_bgr(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 0.95))
    c1 = _hsv_to_bgr(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 0.95))
    if rng.uniform() < 0.5:  # linear gradient, optionally vignetted
        d = rng.uniform(0, 2 * np.pi)
        proj = xx * math.cos(d) + yy * math.sin(d)
        proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
        bg = _mix(c0, c1, proj)
        if rng.uniform() < 0.5:
            r = np.hypot(xx / w - 0.5, yy / h - 0.5)
            bg *= (1 - rng.uniform(0.1, 0.4) * r * 2)[..., None]
    else:  # smooth coloured noise
        gh, gw = int(rng.integers(2, 8)), int(rng.integers(2, 10))
        field = rng.uniform(0, 255, (gh, gw, 3)).astype(np.float32)
        bg = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        bg = _mix(bg, (c0 + c1) / 2, np.full((h, w), rng.uniform(0.2, 0.6), np.float32))
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    if rng.uniform() < 0.6:  # clutter: rectangles, ellipses, lines
        overlay = bg.copy()
        for _ in range(int(rng.integers(4, 16))):
            color = tuple(float(c) for c in rng.uniform(0, 255, 3))
            kind = rng.integers(3)
            p = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            extent = rng.uniform(0.04, 0.25) * short
            thick = -1 if rng.uniform() < 0.6 else int(rng.integers(1, 4))
            if kind == 0:
                q = (int(p[0] + rng.uniform(-2, 2) * extent), int(p[1] + rng.uniform(-2, 2) * extent))
                cv2.rectangle(overlay, p, q, color, thick, cv2.LINE_AA)
            elif kind == 1:
                axes = (int(extent), int(extent * rng.uniform(0.3, 1.0)))
                cv2.ellipse(overlay, p, axes, rng.uniform(0, 180), 0, 360, color, thick, cv2.LINE_AA)
            else:
                q = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
                cv2.line(overlay, p, q, color, max(thick, 1), cv2.LINE_AA)
        opacity = rng.uniform(0.5, 1.0)
        bg = cv2.addWeighted(overlay, opacity, bg, 1.0 - opacity, 0.0)
    if rng.uniform() < 0.5:  # static objects of this split's families: appearance is not the cue
        for _ in range(int(rng.integers(1, 4))):
            app = _make_appearance(rng, split, None)
            size = rng.uniform(0.1, 0.3) * short
            sprite = _rasterise(app, int(size) + 2, np.ones(3, np.float32))
            pose = (rng.uniform(0, w), rng.uniform(0, h), size, rng.uniform(0, 2 * np.pi), 1.0)
            _draw_sprite(bg, sprite, pose)
    if rng.uniform() < 0.5:  # background out of focus
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.6, 2.0))
    grain = rng.normal(0, rng.uniform(1, 5), bg.shape).astype(np.float32)
    return np.clip(bg + grain, 0, 255).astype(np.uint8)


def _make_camera(rng: np.random.Generator, split: str, h: int, w: int) -> _Camera:
    short = min(h, w)
    amp = rng.uniform(0, 0.008 * short) if rng.uniform() < 0.7 else 0.0
    margin = int(math.ceil(2 * amp)) + 1
    canvas = _make_background(rng, split, h + 2 * margin, w + 2 * margin, short)
    tint = np.clip(1 + rng.normal(0, 0.06, 3), 0.85, 1.15).astype(np.float32)
    canvas = np.clip(canvas * tint, 0, 255).astype(np.uint8)
    sigma = rng.uniform(1, 6)
    noise = rng.normal(0, sigma, (4, h, w, 3)).astype(np.float32)
    return _Camera(
        canvas=canvas,
        margin=margin,
        tint=tint,
        shake_amp=np.full((2, 2), amp / 2) * rng.uniform(0.5, 1.0, (2, 2)),
        shake_freq=rng.uniform(0.5, 4.0, (2, 2)),
        shake_phase=rng.uniform(0, 2 * np.pi, (2, 2)),
        gain_base=float(rng.uniform(0.8, 1.15)),
        gain_amp=float(rng.uniform(0, 0.08)),
        gain_freq=float(rng.uniform(0.02, 0.3)),
        gain_phase=float(rng.uniform(0, 2 * np.pi)),
        ramp=None,
        blur_sigma=float(rng.uniform(0, 1.2)),
        noise_pos=np.clip(noise, 0, 255).astype(np.uint8),
        noise_neg=np.clip(-noise, 0, 255).astype(np.uint8),
        noise_order=rng.integers(0, 4, 251),
    )


# --------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class _Motion:
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

    def reversed_(self) -> "_Motion":
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


def _make_motion(family: str, rng: np.random.Generator, h: int, w: int) -> _Motion:
    """Draw a gesture of ``family`` in its forward direction (left, up, in, clockwise)."""
    ref = max(h, w)  # object sizes are fractions of the frame's long side
    u = rng.uniform
    angle0 = u(0, 2 * np.pi)
    if family in ("swipe_h", "swipe_v"):
        along, across = (w, h) if family == "swipe_h" else (h, w)
        travel = u(*SWIPE_TRAVEL) * along
        start = u(0.1 * along + travel, 0.9 * along)  # forward = decreasing coordinate
        side = u(0.3, 0.7) * across
        drift = u(-0.06, 0.06) * across
        arc = u(-0.05, 0.05) * across
        size = u(*OBJECT_SIZE) * ref
        if family == "swipe_h":
            c0, c1, arc_v = (start, side), (start - travel, side + drift), (0.0, arc)
        else:
            c0, c1, arc_v = (side, start), (side + drift, start - travel), (arc, 0.0)
        return _Motion(c0, c1, size, size, angle0, angle0 + u(-0.15, 0.15), arc_v, u(-0.08, 0.08), u(0.5, 1.0))
    if family == "zoom":
        factor = u(*ZOOM_FACTOR)
        small = u(OBJECT_SIZE[0], max(OBJECT_SIZE[0], min(OBJECT_SIZE[1], 0.7 / factor))) * ref
        c0 = (u(0.35, 0.65) * w, u(0.35, 0.65) * h)
        c1 = (c0[0] + u(-0.04, 0.04) * w, c0[1] + u(-0.04, 0.04) * h)
        return _Motion(c0, c1, small, small * factor, angle0, angle0 + u(-0.15, 0.15), (0.0, 0.0), 0.0,
                       u(0.5, 1.0))
    if family == "rotate":
        turn = math.radians(u(*ROTATION_DEGREES))  # positive = clockwise on screen (y points down)
        size = u(0.2, OBJECT_SIZE[1]) * ref
        c0 = (u(0.3, 0.7) * w, u(0.3, 0.7) * h)
        c1 = (c0[0] + u(-0.03, 0.03) * w, c0[1] + u(-0.03, 0.03) * h)
        return _Motion(c0, c1, size, size, angle0, angle0 + turn, (0.0, 0.0), u(-0.06, 0.06), u(0.5, 1.0))
    if family == "idle":
        c = (u(0.25, 0.75) * w, u(0.25, 0.75) * h)
        size = u(*OBJECT_SIZE) * ref
        return _Motion(c, c, size, size, angle0, angle0, (0.0, 0.0), 0.0, 1.0)
    raise AssertionError(family)


@dataclass(frozen=True)
class _Jitter:
    """Hand tremor: a few small sinusoids of absolute time (px for x/y, radians for angle)."""

    amp: np.ndarray  # (3, 2)
    freq: np.ndarray  # (3, 2)
    phase: np.ndarray  # (3, 2)

    def at(self, t: float) -> np.ndarray:
        return (self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)).sum(1)


def _make_jitter(rng: np.random.Generator, short: int, strength: tuple[float, float]) -> _Jitter:
    amp = np.empty((3, 2))
    amp[:2] = rng.uniform(*strength, (2, 2)) * short / 2
    amp[2] = rng.uniform(0, math.radians(1.0), 2)
    return _Jitter(amp, rng.uniform(0.7, 5.0, (3, 2)), rng.uniform(0, 2 * np.pi, (3, 2)))


@dataclass(frozen=True)
class _Episode:
    """One object's life on screen: appear, idle, (gesture), idle, disappear."""

    key: tuple[int, ...]  # identifies the sprite cache entry
    appearance: _Appearance
    motion: _Motion
    gesture: tuple[float, float]  # (start, end) seconds; start == end means no gesture
    fade_in: tuple[float, float] | None
    fade_out: tuple[float, float] | None
    jitter: _Jitter

    def pose(self, t: float) -> tuple[float, float, float, float, float]:
        g0, g1 = self.gesture
        p = 0.0 if g1 <= g0 else (t - g0) / (g1 - g0)
        cx, cy, size, angle = self.motion.pose(p)
        jx, jy, ja = self.jitter.at(t)
        opacity = 1.0
        if self.fade_in is not None:
            opacity *= _smoothstep((t - self.fade_in[0]) / max(self.fade_in[1] - self.fade_in[0], 1e-6))
        if self.fade_out is not None:
            opacity *= 1 - _smoothstep((t - self.fade_out[0]) / max(self.fade_out[1] - self.fade_out[0], 1e-6))
        return cx + jx, cy + jy, size, angle + ja, opacity


class _Renderer:
    """Frame ``i`` at time ``i / fps``: camera plate + the episode that owns that time."""

    def __init__(self, camera: _Camera, episodes: Sequence[_Episode], switch_s: Sequence[float],
                 size: tuple[int, int], fps: float) -> None:
        self.camera, self.episodes, self.switch_s = camera, tuple(episodes), tuple(switch_s)
        self.h, self.w = size
        self.fps = fps
        self._sprites: dict[tuple[int, ...], _Sprite] = {}

    def _sprite(self, ep: _Episode) -> _Sprite:
        sprite = self._sprites.get(ep.key)
        if sprite is None:
            sprite = _rasterise(ep.appearance, int(math.ceil(ep.motion.max_size())) + 2, self.camera.tint)
            if len(self._sprites) >= 4:  # live scripts visit episodes in order: keep a few
                self._sprites.pop(next(iter(self._sprites)))
            self._sprites[ep.key] = sprite
        return sprite

    def _pose(self, t: float) -> tuple[_Episode, tuple[float, float, float, float, float], tuple[int, int]]:
        ep = self.episodes[max(bisect.bisect_right(self.switch_s, t) - 1, 0)]
        dx, dy = self.camera.shake(t)
        cx, cy, size, angle, opacity = ep.pose(t)
        return ep, (cx - dx, cy - dy, size, angle, opacity), (dx, dy)

    def frame(self, index: int) -> np.ndarray:
        t = index / self.fps
        ep, pose, (dx, dy) = self._pose(t)
        m = self.camera.margin
        frame = self.camera.canvas[m + dy:m + dy + self.h, m + dx:m + dx + self.w].copy()
        if pose[4] > 1e-3:
            _draw_sprite(frame, self._sprite(ep), pose)
        return self.camera.finish(frame, index, t)

    def truth(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        t = index / self.fps
        ep, pose, (dx, dy) = self._pose(t)
        m = self.camera.margin
        plate = self.camera.canvas[m + dy:m + dy + self.h, m + dx:m + dx + self.w].copy()
        obj, marker = _coverage(self._sprite(ep), pose, self.h, self.w)
        return np.array(pose), obj, marker, self.camera.finish(plate, index, t)


# --------------------------------------------------------------------------- clips


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
    0.5-1.5 s); ``lead_in_s``/``lead_out_s`` add idle frames of the same scene before/after it
    (the object may fade in at the start of a long lead-in or out at the end of a long
    lead-out, as between gestures of a live script). For ``no_motion`` the whole clip is one
    idle behaviour. The seed fixes the object and the background for every label, so
    ``render_clip("swipe_right", s)`` is ``render_clip("swipe_left", s)`` played backwards.
    With ``return_truth`` also returns a :class:`ClipTruth`.
    """
    name = _label_name(label)
    seed, split = _check_seed(seed), _check_split(split)
    h, w = _check_size(size)
    fps = _check_fps(fps)
    for what, value in (("lead_in_s", lead_in_s), ("lead_out_s", lead_out_s)):
        if not isinstance(value, (int, float)) or not 0 <= value <= 30:
            raise SyntheticError(f"{what} must be between 0 and 30 seconds, got {value!r}")
    family, backwards = _FAMILY_OF[name]
    rng_m = _rng(seed, split, _S_MOTION, _FAMILY_CODE[family])
    drawn = float(rng_m.uniform(*GESTURE_SECONDS))  # drawn first, identical for a label pair
    if duration_s is None:
        duration_s = drawn
    if not isinstance(duration_s, (int, float)) or not 0 < duration_s <= 30:
        raise SyntheticError(f"duration_s must be in (0, 30] seconds (gestures last 0.5-1.5 s), got {duration_s!r}")
    n_gesture = max(2, int(round(duration_s * fps)))
    n_in, n_out = int(round(lead_in_s * fps)), int(round(lead_out_s * fps))
    n_total = n_in + n_gesture + n_out
    short = min(h, w)

    camera = _make_camera(_rng(seed, split, _S_CAMERA), split, h, w)
    appearance = _make_appearance(_rng(seed, split, _S_APPEARANCE), split, _mean_color(camera))
    motion = _make_motion(family, rng_m, h, w)
    if backwards:
        motion = motion.reversed_()
    rng_idle = _rng(seed, split, _S_IDLE, _FAMILY_CODE[family])
    end_s = (n_total - 1) / fps
    behaviour = None
    fade_in = fade_out = None
    if family == "idle":
        behaviour = _IDLE_BEHAVIOURS[int(rng_idle.integers(len(_IDLE_BEHAVIOURS)))]
        jitter = _make_jitter(rng_idle, short, (0.008, 0.02) if behaviour == "jitter" else (0.001, 0.005))
        gesture = (0.0, 0.0)
        span = max(end_s, 1 / fps)
        if behaviour == "lighting":
            t0 = rng_idle.uniform(0, 0.3) * span
            change = rng_idle.uniform(0.2, 0.45) * (1 if rng_idle.uniform() < 0.5 else -1)
            camera = replace(camera, ramp=(t0, t0 + rng_idle.uniform(0.5, 0.7) * span, change))
        elif behaviour == "fade_in":
            t0 = rng_idle.uniform(0, 0.3) * span
            fade_in = (t0, t0 + rng_idle.uniform(0.3, 0.6) * span)
        elif behaviour == "fade_out":
            t0 = rng_idle.uniform(0.1, 0.4) * span
            fade_out = (t0, t0 + rng_idle.uniform(0.3, 0.55) * span)
        elif behaviour == "replace":
            mid = rng_idle.uniform(0.4, 0.6) * span
            fade = rng_idle.uniform(0.15, 0.35) * span
            fade_out = (mid - fade, mid)
    else:
        jitter = _make_jitter(rng_idle, short, (0.001, 0.005))
        gesture = (n_in / fps, (n_in + n_gesture - 1) / fps)
        # A long idle lead-in may begin with the object fading in, a long lead-out may end with it
        # fading out: the transitions a live script shows between gestures.
        if lead_in_s >= 0.6 and rng_idle.uniform() < 0.4:
            fade_in = (0.0, min(0.3, lead_in_s / 2))
        if lead_out_s >= 0.6 and rng_idle.uniform() < 0.4:
            fade_out = (end_s - min(0.3, lead_out_s / 2), end_s)
    episodes = [_Episode((0,), appearance, motion, gesture, fade_in, fade_out, jitter)]
    switch = [0.0]
    if behaviour == "replace":
        rng2 = _rng(seed, split, _S_SECOND_OBJECT)
        second = _Episode((1,), _make_appearance(rng2, split, _mean_color(camera)), _make_motion("idle", rng2, h, w),
                          (0.0, 0.0), (fade_out[1], fade_out[1] + (fade_out[1] - fade_out[0])), None,
                          _make_jitter(rng2, short, (0.001, 0.005)))
        episodes.append(second)
        switch.append(fade_out[1])
    renderer = _Renderer(camera, episodes, switch, (h, w), fps)
    frames = np.stack([renderer.frame(i) for i in range(n_total)])
    if not return_truth:
        return frames
    parts = [renderer.truth(i) for i in range(n_total)]
    truth = ClipTruth(
        poses=np.stack([p[0] for p in parts]),
        object_alpha=np.stack([p[1] for p in parts]),
        marker_alpha=np.stack([p[2] for p in parts]),
        plate=np.stack([p[3] for p in parts]),
        shape=appearance.shape,
        texture=appearance.texture_name,
        behaviour=behaviour,
    )
    return frames, truth


def _mean_color(camera: _Camera) -> np.ndarray:
    return camera.canvas.reshape(-1, 3).mean(0).astype(np.float32)


# --------------------------------------------------------------------------- live script


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
        seed, split = _check_seed(seed), _check_split(split)
        h, w = _check_size(size)
        self.fps = _check_fps(fps)
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
        bad = [x for x in labels if x not in CLASSES[:-1]]
        if not labels or bad:
            raise SyntheticError(f"labels must be a non-empty subset of {CLASSES[:-1]} (no_motion is what "
                                 f"plays between gestures), got {labels!r}")
        self.duration_s = float(duration_s)
        self.num_frames = int(round(self.duration_s * self.fps))
        short = min(h, w)

        camera = _make_camera(_rng(seed, split, _S_CAMERA), split, h, w)
        avoid = _mean_color(camera)
        rng_t = _rng(seed, split, _S_TIMELINE)
        events: list[GestureEvent] = []
        episodes: list[_Episode] = []
        switch: list[float] = []
        bag: list[str] = []
        t = 0.0
        previous_end: float | None = None
        while True:
            idle = float(rng_t.uniform(lo, hi))
            length = float(rng_t.uniform(*GESTURE_SECONDS))
            if t + idle + length + 0.3 > self.duration_s:
                break
            if not bag:  # shuffle-bag: every label once per round, in random order
                bag = [str(x) for x in rng_t.permutation(labels)]
            label = bag.pop()
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
            family, backwards = _FAMILY_OF[label]
            rng_m = _rng(seed, split, _S_MOTION, k)
            motion = _make_motion(family, rng_m, h, w)
            episodes.append(_Episode(
                key=(k,),
                appearance=_make_appearance(_rng(seed, split, _S_APPEARANCE, k), split, avoid),
                motion=motion.reversed_() if backwards else motion,
                gesture=(start, end),
                fade_in=fade_in,
                fade_out=None,
                jitter=_make_jitter(rng_m, short, (0.001, 0.005)),
            ))
            switch.append(begin)
            events.append(GestureEvent(label, start, end))
            previous_end, t = end, end
        if not episodes:  # too short for a gesture: an idle object the whole time
            rng_m = _rng(seed, split, _S_MOTION, 0)
            episodes.append(_Episode((0,), _make_appearance(_rng(seed, split, _S_APPEARANCE, 0), split, avoid),
                                     _make_motion("idle", rng_m, h, w), (0.0, 0.0), None, None,
                                     _make_jitter(rng_m, short, (0.001, 0.005))))
            switch.append(0.0)
        self.timeline: tuple[GestureEvent, ...] = tuple(events)
        self._starts = [e.start_s for e in events]
        self._renderer = _Renderer(camera, episodes, switch, (h, w), self.fps)

    def frame_at(self, index: int) -> np.ndarray:
        """Frame ``index`` (time ``index / fps``) as H x W x 3 uint8 BGR."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_frames:
            raise SyntheticError(f"frame index must be an integer in [0, {self.num_frames}), got {index!r}")
        return self._renderer.frame(int(index))

    def object_pose_at(self, index: int) -> tuple[float, float, float, float, float]:
        """Ground truth for frame ``index``: ``(cx, cy, size, angle, opacity)`` of the object.

        Pixels / radians (angle grows clockwise on screen), camera shake included. For checking
        that nothing moves outside the timeline, or for scoring a localiser.
        """
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_frames:
            raise SyntheticError(f"frame index must be an integer in [0, {self.num_frames}), got {index!r}")
        return self._renderer._pose(int(index) / self.fps)[1]

    def label_at(self, t_s: float) -> str:
        """Ground-truth label at time ``t_s`` seconds ("no_motion" outside every gesture)."""
        i = bisect.bisect_right(self._starts, t_s) - 1
        if i >= 0 and t_s < self.timeline[i].end_s:
            return self.timeline[i].label
        return "no_motion"


# --------------------------------------------------------------------------- dataset files


def write_dataset(
    root: Path | str,
    *,
    clips_per_class: int,
    seed: int,
    split: str,
    size: tuple[int, int] = (120, 160),
    fps: float = 30.0,
    fourcc: str = "mp4v",
    lead_s: tuple[float, float] = (0.1, 0.5),
    progress: bool = True,
) -> Path:
    """Write ``clips_per_class`` videos per class and an mmaction2 VideoDataset annotation file.

    Layout: ``root/<class>/<class>_<i>.mp4``, ``root/annotations.txt`` with lines
    ``<class>/<class>_<i>.mp4 <label_index>``, ``root/classes.txt`` (one class per line, in
    label-index order) and ``root/manifest.csv`` (path, label, label_index, seed, split,
    lead_in_s, lead_out_s, num_frames: enough to re-render any clip with :func:`render_clip`). Clip ``i`` of every class uses the same clip seed (same object and
    background), so only the motion distinguishes the classes. Each clip gets idle lead-in and
    lead-out lengths drawn from ``lead_s``. Returns the annotation file's path.
    """
    seed, split = _check_seed(seed), _check_split(split)
    h, w = _check_size(size)
    fps = _check_fps(fps)
    if isinstance(clips_per_class, bool) or not isinstance(clips_per_class, int) or clips_per_class < 1:
        raise SyntheticError(f"clips_per_class must be a positive integer, got {clips_per_class!r}")
    if not isinstance(fourcc, str) or len(fourcc) != 4:
        raise SyntheticError(f"fourcc must be a 4-character codec code such as 'mp4v', got {fourcc!r}")
    lo, hi = lead_s
    if not 0 <= lo <= hi <= 5:
        raise SyntheticError(f"lead_s must satisfy 0 <= min <= max <= 5 seconds, got {lead_s!r}")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SyntheticError(f"cannot create dataset directory {root}: {exc}") from None
    code = cv2.VideoWriter_fourcc(*fourcc)
    clip_seeds = np.random.SeedSequence([seed, _SPLIT_CODE[split]]).generate_state(clips_per_class, np.uint32)
    lines = []
    manifest = ["path,label,label_index,seed,split,lead_in_s,lead_out_s,num_frames"]
    for label_index, name in enumerate(CLASSES):
        (root / name).mkdir(exist_ok=True)
        for i, clip_seed in enumerate(clip_seeds):
            lead = np.random.default_rng([int(clip_seed), label_index, 99]).uniform(lo, hi, 2)
            frames = render_clip(name, int(clip_seed), size=(h, w), fps=fps, split=split,
                                 lead_in_s=float(lead[0]), lead_out_s=float(lead[1]))
            rel = f"{name}/{name}_{i:05d}.mp4"
            writer = cv2.VideoWriter(str(root / rel), code, fps, (w, h))
            if not writer.isOpened():
                raise SyntheticError(f"OpenCV cannot write {root / rel} with fourcc {fourcc!r}; "
                                     "try fourcc='mp4v' (always available) or check the directory is writable")
            try:
                for frame in frames:
                    writer.write(frame)
            finally:
                writer.release()
            lines.append(f"{rel} {label_index}")
            manifest.append(f"{rel},{name},{label_index},{int(clip_seed)},{split},{float(lead[0])!r},"
                            f"{float(lead[1])!r},{len(frames)}")
        if progress:
            print(f"[synthetic] {split}: {name} {clips_per_class} clips", file=sys.stderr, flush=True)
    (root / "manifest.csv").write_text("\n".join(manifest) + "\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    annotations = root / "annotations.txt"
    annotations.write_text("\n".join(lines) + "\n")
    return annotations
