"""A fingerprint of rendered frames that survives an OpenCV upgrade and still catches a changed generator.

An exact SHA-256 breaks when OpenCV's rasteriser rounds a handful of pixels differently (5.0 -> 5.1 moved
0-19 pixels of 1-4 million by one level, clip by clip). What the golden tests guard against is a changed
generator: another random draw, a shifted object, a new blur. Those move thousands of pixel-levels. The
fingerprint keeps two kinds of numbers per frame, both linear in the pixels so a drift of d pixel-levels
moves them by at most d:

- the mean of each cell of a ``GRID`` x ``GRID`` grid (and channel): catches brightness, blur and layout;
- ``PROJECTIONS`` sums of the pixels with fixed pseudo-random signs: a redrawn noise field or a one-pixel
  object shift moves them by hundreds to thousands, a resampling drift of a few pixels by a few.

The signs come from integer arithmetic, not from a random generator, so a numpy release cannot change them.
"""

from __future__ import annotations

import numpy as np

GRID = 4
PROJECTIONS = 8
# A frame may differ from its reference by this many pixel-levels in total before a projection can fail,
# and a grid cell's mean by this many levels (a 30x40 cell then allows ~300 pixel-levels).
PROJECTION_TOLERANCE = 96.0
CELL_TOLERANCE = 0.25


def _signs(n: int) -> np.ndarray:
    """(PROJECTIONS, n) of +1/-1 from a 64-bit integer hash of (projection, position)."""
    i = np.arange(n, dtype=np.uint64)[None, :]
    k = np.arange(PROJECTIONS, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        x = (i + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15) ^ (k + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
    return np.where((x >> np.uint64(40)) & np.uint64(1), 1.0, -1.0)


def fingerprint(frames: np.ndarray) -> np.ndarray:
    """(T, GRID*GRID*C + PROJECTIONS) float64 for (T, H, W[, C]) images."""
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim == 3:
        f = f[..., None]
    t, h, w, c = f.shape
    ys = np.linspace(0, h, GRID + 1).astype(int)
    xs = np.linspace(0, w, GRID + 1).astype(int)
    cells = [f[:, ys[r]:ys[r + 1], xs[q]:xs[q + 1]].mean(axis=(1, 2)) for r in range(GRID) for q in range(GRID)]
    projections = f.reshape(t, -1) @ _signs(h * w * c).T
    return np.concatenate([np.concatenate(cells, axis=1), projections], axis=1)


def mismatch(now: np.ndarray, reference: np.ndarray) -> str | None:
    """None when ``now`` is within tolerance of ``reference``; else one line saying where it is not."""
    if now.shape != reference.shape:
        return f"shape {now.shape} != reference {reference.shape}"
    n_cells = now.shape[1] - PROJECTIONS
    cell = np.abs(now[:, :n_cells] - reference[:, :n_cells])
    proj = np.abs(now[:, n_cells:] - reference[:, n_cells:])
    if cell.max(initial=0.0) > CELL_TOLERANCE or proj.max(initial=0.0) > PROJECTION_TOLERANCE:
        frame = int(np.argmax(np.maximum(cell.max(axis=1, initial=0.0) / CELL_TOLERANCE,
                                         proj.max(axis=1, initial=0.0) / PROJECTION_TOLERANCE)))
        return (f"frame {frame}: a grid cell's mean moved by {cell[frame].max():.3f} levels (allowed "
                f"{CELL_TOLERANCE}), a signed pixel sum by {proj[frame].max():.0f} (allowed {PROJECTION_TOLERANCE:.0f})")
    return None
