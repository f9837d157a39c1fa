"""Object surfaces: one texture builder per family, plus the colour helpers they share.

A texture is a function of normalised sprite coordinates ``(x, y)`` in [-1, 1] returning
``(S, S, 3)`` float32 BGR, so one object renders at any resolution. Like shapes, the families
are split between train and test. Adding a family: write a builder, add it to
``TEXTURE_BUILDERS`` and to one split's tuple.
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

TEXTURE_FAMILIES: dict[str, tuple[str, ...]] = {
    "train": ("solid", "stripes", "checker", "gradient"),
    "test": ("dots", "blotches", "rings", "zigzag"),
}

Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (x, y) grids -> (S, S, 3) float32


def hsv_to_bgr(h: float, s: float, v: float) -> np.ndarray:
    """h in [0, 1), s and v in [0, 1] -> BGR float in 0..255."""
    px = np.array([[[int(h * 180) % 180, int(s * 255), int(v * 255)]]], np.uint8)
    return cv2.cvtColor(px, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def mix(c0: np.ndarray, c1: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-pixel blend ``c0 -> c1`` by the weights ``m`` (H x W)."""
    m = m[..., None].astype(np.float32)
    return c0 * (1 - m) + c1 * m


def _soft_square(phase: np.ndarray) -> np.ndarray:
    """Square wave in 0..1 with soft edges (less aliasing than a hard threshold)."""
    return np.clip(np.sin(2 * np.pi * phase) * 3.0, -1, 1) * 0.5 + 0.5


def _solid(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    d = rng.uniform(0, 2 * np.pi)
    return lambda x, y: c0 * (1 + 0.12 * (x * math.cos(d) + y * math.sin(d)))[..., None]


def _stripes(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    d, period = rng.uniform(0, np.pi), rng.uniform(0.25, 0.6)
    return lambda x, y: mix(c0, c1, _soft_square((x * math.cos(d) + y * math.sin(d)) / period))


def _checker(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    d, cell = rng.uniform(0, np.pi / 2), rng.uniform(0.25, 0.5)

    def checker(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        a = (x * math.cos(d) + y * math.sin(d)) / (2 * cell)
        b = (-x * math.sin(d) + y * math.cos(d)) / (2 * cell)
        return mix(c0, c1, (_soft_square(a) - 0.5) * (_soft_square(b) - 0.5) * 2 + 0.5)

    return checker


def _gradient(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    d = rng.uniform(0, 2 * np.pi)
    return lambda x, y: mix(c0, c1, np.clip(0.5 + 0.5 * (x * math.cos(d) + y * math.sin(d)), 0, 1))


def _dots(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    spacing, radius = rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.38)
    ox, oy = rng.uniform(0, 1, 2)

    def dots(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fx = (x / spacing + ox) % 1.0 - 0.5
        fy = (y / spacing + oy) % 1.0 - 0.5
        return mix(c0, c1, np.clip((radius - np.hypot(fx, fy)) * 12 + 0.5, 0, 1))

    return dots


def _blotches(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    field = rng.uniform(0, 1, (5, 5)).astype(np.float32)

    def blotches(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        smooth = cv2.resize(field, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_CUBIC)
        return mix(c0, c1, np.clip((smooth - 0.5) * 4 + 0.5, 0, 1))

    return blotches


def _rings(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    cx, cy, period = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.25, 0.45)
    return lambda x, y: mix(c0, c1, _soft_square(np.hypot(x - cx, y - cy) / period))


def _zigzag(rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> Texture:
    d, period, amp = rng.uniform(0, np.pi), rng.uniform(0.3, 0.5), rng.uniform(0.15, 0.3)

    def zigzag(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        a = x * math.cos(d) + y * math.sin(d)
        b = -x * math.sin(d) + y * math.cos(d)
        tri = np.abs((b / (2 * amp)) % 1.0 - 0.5) * 2 * amp
        return mix(c0, c1, _soft_square((a + tri) / period))

    return zigzag


TEXTURE_BUILDERS: dict[str, Callable[[np.random.Generator, np.ndarray, np.ndarray], Texture]] = {
    "solid": _solid,
    "stripes": _stripes,
    "checker": _checker,
    "gradient": _gradient,
    "dots": _dots,
    "blotches": _blotches,
    "rings": _rings,
    "zigzag": _zigzag,
}
