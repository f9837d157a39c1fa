"""Splits, argument checks and the seeded random streams every part of the generator shares.

Determinism lives here: every draw comes from ``np.random.default_rng([seed, split_code,
stream, ...])`` (no global RNG), with named streams so that no two uses collide. The split code
is part of every stream, so a train and a test clip never share random draws even for the same
integer seed.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

SPLIT_CODE = {"train": 1, "test": 2}

# Random streams (the third entry of every seed sequence).
S_CAMERA, S_APPEARANCE, S_MOTION, S_IDLE, S_TIMELINE, S_SECOND_OBJECT = 1, 2, 3, 4, 5, 6


class SyntheticError(ValueError):
    """A bad argument to the synthetic generator; the message says what and how to fix it."""


def rng(seed: int, split: str, stream: int, *extra: int) -> np.random.Generator:
    """The generator of one named random stream of one (seed, split)."""
    return np.random.default_rng([seed, SPLIT_CODE[split], stream, *extra])


def check_split(split: str) -> str:
    if split not in SPLIT_CODE:
        raise SyntheticError(f"split must be 'train' or 'test', got {split!r}")
    return split


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SyntheticError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SyntheticError(f"size must be (height, width), got {size!r}") from None
    if h < 32 or w < 32 or h > 4096 or w > 4096:
        raise SyntheticError(f"size (height, width) must be between 32 and 4096 pixels, got {size!r}")
    return h, w


def check_fps(fps: float) -> float:
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 1.0 <= fps <= 240.0:
        raise SyntheticError(f"fps must be a number in [1, 240], got {fps!r}")
    return float(fps)


def check_frame_index(index: int, num_frames: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < num_frames:
        raise SyntheticError(f"frame index must be an integer in [0, {num_frames}), got {index!r}")
    return int(index)


def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, a smooth S in between (fades and lighting ramps)."""
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)
