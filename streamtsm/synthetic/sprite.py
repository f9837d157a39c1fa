"""Rasterised objects and how they are drawn into a frame.

An :class:`~.appearance.Appearance` is rasterised once per episode into a mip chain
(premultiplied BGRA), so shrinking during a zoom does not alias; each frame warps only the
bounding box of the object's footprint (cheap enough for a live 30 fps source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .appearance import Appearance
from .shapes import rasterise_mask

Pose = Sequence[float]  # (cx, cy, size, angle, opacity): frame pixels, radians clockwise on screen


@dataclass(frozen=True)
class Sprite:
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


def rasterise(app: Appearance, s: int, tint: np.ndarray) -> Sprite:
    """Rasterise ``app`` at ``s`` pixels (clamped to 16..1024) under the camera's colour ``tint``."""
    s = int(min(max(s, 16), 1024))
    grid = ((np.arange(s) + 0.5) / s * 2 - 1).astype(np.float32)
    x, y = np.meshgrid(grid, grid)
    color = np.clip(app.texture(x, y), 0, 255).astype(np.float32)
    marker = np.zeros((s, s), np.uint8)
    centre = ((np.array(app.marker_uv) + 1) / 2 * s - 0.5) * 16
    cv2.circle(marker, tuple(int(v) for v in np.round(centre)), int(round(app.marker_radius * s / 2 * 16)),
               255, -1, cv2.LINE_AA, 4)
    alpha = rasterise_mask(app.polygons, s)
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
    return Sprite(tuple(levels))


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


def draw_sprite(dst: np.ndarray, sprite: Sprite, pose: Pose) -> None:
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


def coverage(sprite: Sprite, pose: Pose, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame object and marker coverage (uint8) for ``pose``; for ground truth only."""
    cx, cy, size, angle, opacity = pose
    bgra, marker = sprite.level_for(size)
    side = bgra.shape[0]
    m = _sprite_matrix(side, cx, cy, size, angle)
    out = []
    for layer in (np.ascontiguousarray(bgra[..., 3]), marker):
        full = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out.append(np.round(full * opacity).astype(np.uint8))
    return out[0], out[1]
