"""Object outlines: one polygon builder per shape family, normalised and rasterised.

The families are split between train and test so that a held-out clip shows an outline the
model has never seen. No shape is a circle or has a mirror/rotational symmetry that would hide
a rotation. A builder returns polygons filled in order (value 255 adds, 0 cuts away), in
unnormalised coordinates; :func:`normalise` centres, turns and fits them into radius 0.95.
Adding a family: write a builder, add it to ``SHAPE_BUILDERS`` and to one split's tuple.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import cv2
import numpy as np

Polygons = list[tuple[np.ndarray, int]]

SHAPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "train": ("arrow", "rectangle", "triangle", "l_shape", "star"),
    "test": ("polygon", "cross", "blob", "t_shape", "crescent"),
}


def _regular_ring(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    ang = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(ang), np.sin(ang)], 1) * radius


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _arrow(rng: np.random.Generator) -> Polygons:
    u = rng.uniform
    shaft, width, head_len, head_w = u(1.0, 1.8), u(0.25, 0.45), u(0.5, 0.9), u(0.8, 1.3)
    pts = [(0, -width / 2), (shaft, -width / 2), (shaft, -head_w / 2), (shaft + head_len, 0),
           (shaft, head_w / 2), (shaft, width / 2), (0, width / 2)]
    return [(np.array(pts, float), 255)]


def _rectangle(rng: np.random.Generator) -> Polygons:
    return [(_rect(0, 0, rng.uniform(1.35, 2.5), 1.0), 255)]


def _triangle(rng: np.random.Generator) -> Polygons:
    while True:  # a scalene triangle: no two gaps alike, none too thin
        gaps = rng.dirichlet([4, 4, 4]) * 2 * np.pi
        if gaps.min() > np.radians(70) and np.diff(np.sort(gaps)).min() > np.radians(12):
            break
    ang = np.cumsum(gaps)
    return [(np.stack([np.cos(ang), np.sin(ang)], 1), 255)]


def _l_shape(rng: np.random.Generator) -> Polygons:
    u = rng.uniform
    a, b, t = u(1.0, 1.6), u(1.6, 2.2), u(0.45, 0.7)
    return [(np.array([(0, 0), (a, 0), (a, t), (t, t), (t, b), (0, b)], float), 255)]


def _star(rng: np.random.Generator) -> Polygons:
    n, inner = int(rng.integers(5, 8)), rng.uniform(0.4, 0.55)
    radii = np.tile([1.0, inner], n)
    radii[0] = rng.uniform(1.3, 1.5)  # one long spike breaks the rotational symmetry
    ang = np.arange(2 * n) * np.pi / n
    return [(np.stack([np.cos(ang), np.sin(ang)], 1) * radii[:, None], 255)]


def _polygon(rng: np.random.Generator) -> Polygons:
    n = int(rng.integers(5, 9))
    ang = np.sort((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n)
    radii = rng.uniform(0.6, 1.0, n)
    return [(np.stack([np.cos(ang), np.sin(ang)], 1) * radii[:, None], 255)]


def _cross(rng: np.random.Generator) -> Polygons:
    u = rng.uniform
    t = u(0.35, 0.55)
    left, right, up, down = u(0.6, 1.0), u(1.3, 2.0), u(0.6, 1.1), u(0.9, 1.4)
    return [(_rect(-left, -t / 2, right, t / 2), 255), (_rect(-t / 2, -up, t / 2, down), 255)]


def _blob(rng: np.random.Generator) -> Polygons:
    theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    r = np.ones_like(theta)
    for k in (1, 2, 3, 4):
        r += rng.uniform(0.08, 0.22) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.maximum(r, 0.35)
    return [(np.stack([np.cos(theta), np.sin(theta)], 1) * r[:, None], 255)]


def _t_shape(rng: np.random.Generator) -> Polygons:
    u = rng.uniform
    bar, t, stem = u(1.6, 2.4), u(0.4, 0.6), u(1.2, 1.9)
    off = u(-0.3, 0.3) * bar  # off-centre stem: no mirror symmetry either
    return [(_rect(-bar / 2, 0, bar / 2, t), 255), (_rect(off - t / 2, t, off + t / 2, t + stem), 255)]


def _crescent(rng: np.random.Generator) -> Polygons:
    inner_r, offset = rng.uniform(0.7, 0.85), rng.uniform(0.4, 0.6)
    return [(_regular_ring(64), 255), (_regular_ring(64, inner_r) + [offset, rng.uniform(-0.15, 0.15)], 0)]


SHAPE_BUILDERS: dict[str, Callable[[np.random.Generator], Polygons]] = {
    "arrow": _arrow,
    "rectangle": _rectangle,
    "triangle": _triangle,
    "l_shape": _l_shape,
    "star": _star,
    "polygon": _polygon,
    "cross": _cross,
    "blob": _blob,
    "t_shape": _t_shape,
    "crescent": _crescent,
}


def normalise(polys: Polygons, angle: float) -> Polygons:
    """Centre on the bounding box of the filled parts, rotate, and fit into radius 0.95."""
    filled = np.concatenate([p for p, v in polys if v])
    centre = (filled.min(0) + filled.max(0)) / 2
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    out = [((p - centre) @ rot.T, v) for p, v in polys]
    radius = max(np.linalg.norm(p, axis=1).max() for p, v in out if v)
    return [(p * (0.95 / radius), v) for p, v in out]


def rasterise_mask(polys: Sequence[tuple[np.ndarray, int]], s: int) -> np.ndarray:
    """Anti-aliased coverage (uint8, ``s`` x ``s``) of normalised polygons spanning [-1, 1]."""
    mask = np.zeros((s, s), np.uint8)
    for pts, value in polys:
        pix = ((pts + 1) / 2 * s - 0.5) * 16  # pixel-centre convention, 4 fractional bits
        cv2.fillPoly(mask, [np.round(pix).astype(np.int32)], int(value), cv2.LINE_AA, 4)
    return mask
