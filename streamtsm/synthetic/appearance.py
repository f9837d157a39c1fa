"""One object's look: a shape and a texture of the split, two colours, and a rotation marker.

The marker is an off-centre disc of contrasting colour placed well inside the shape and far
from its centroid, so that a rotation is always visible even for a near-symmetric outline.
The description is resolution independent; :mod:`.sprite` rasterises it at the size needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .shapes import SHAPE_BUILDERS, SHAPE_FAMILIES, normalise, rasterise_mask
from .textures import TEXTURE_BUILDERS, TEXTURE_FAMILIES, Texture, hsv_to_bgr


@dataclass(frozen=True)
class Appearance:
    """Resolution-independent description of one object (shape, texture, marker)."""

    shape: str
    texture_name: str
    polygons: tuple[tuple[np.ndarray, int], ...]
    texture: Texture
    marker_uv: tuple[float, float]
    marker_radius: float
    marker_bgr: np.ndarray


def make_appearance(rng: np.random.Generator, split: str, avoid_bgr: np.ndarray | None) -> Appearance:
    """Draw an object of ``split``'s families whose main colour is far from ``avoid_bgr``."""
    shape = SHAPE_FAMILIES[split][int(rng.integers(len(SHAPE_FAMILIES[split])))]
    texture_name = TEXTURE_FAMILIES[split][int(rng.integers(len(TEXTURE_FAMILIES[split])))]
    polys = normalise(SHAPE_BUILDERS[shape](rng), rng.uniform(0, 2 * np.pi))
    for _ in range(12):  # an object that blends into its background teaches nothing
        hue = rng.uniform()
        c0 = hsv_to_bgr(hue, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))
        if avoid_bgr is None or np.linalg.norm(c0 - avoid_bgr) > 90:
            break
    c1 = hsv_to_bgr((hue + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.9))
    texture = TEXTURE_BUILDERS[texture_name](rng, c0, c1)
    # The marker: a disc well inside the shape and well away from its centroid.
    probe = 128
    mask = rasterise_mask(polys, probe)
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
        marker_bgr = hsv_to_bgr((hue + 0.5) % 1.0, 1.0, 0.15 if lum > 110 else 1.0)
    return Appearance(shape, texture_name, tuple(polys), texture, (float(gx[pick]), float(gy[pick])),
                      radius, marker_bgr)
