"""Training-time clip augmentation (seed 002's pipeline) on uint8 BGR frames, numpy/OpenCV only.

Why this module exists: the model must see at training time exactly the pixels it will see at
inference time, apart from the random crop. So the fixed steps (resize of the short side, channel
order, mean/std) come from the same :class:`~streamtsm.card.Preprocessing` the card ships with and
the runtime's :class:`~streamtsm.preprocess.FramePreprocessor` applies; only the crop differs:

* train: Resize short side -> MultiScaleCrop (one crop box per clip, scales 1/.875/.75/.66, box
  aspect within one scale step, corner/centre grid positions as mmaction2's ``random_crop=False``
  with ``more_fix_crop``) -> Resize to ``crop_size``² -> optional Flip -> Normalize;
* eval: the runtime preprocessor itself (Resize short side -> CentreCrop -> Normalize).

Flip is off by default: half of the gesture classes are defined by direction (a flipped
``swipe_left`` is a ``swipe_right``), so flipping without remapping labels teaches the wrong
thing. Pass ``flip_pairs`` to flip and swap the paired labels.

The whole clip gets one crop box and one flip decision: a box that moved between frames would be
motion the model could learn from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..card import Preprocessing
from ..preprocess import FramePreprocessor

__all__ = ["MULTISCALE_SCALES", "AugmentConfig", "TrainTransform", "EvalTransform", "resize_short_side", "multiscale_crop_box"]

MULTISCALE_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)


@dataclass(frozen=True)
class AugmentConfig:
    """Random parts of the training pipeline (the fixed parts come from the card's Preprocessing)."""

    scales: tuple[float, ...] = MULTISCALE_SCALES
    max_wh_scale_gap: int = 1
    flip_ratio: float = 0.0
    #: label pairs swapped by a horizontal flip, e.g. ((0, 1), (6, 7)); required when flip_ratio > 0
    flip_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"MultiScaleCrop scales must be in (0, 1], got {self.scales!r}")
        if not 0 <= self.flip_ratio <= 1:
            raise ValueError(f"flip_ratio must be in [0, 1], got {self.flip_ratio!r}")


def resize_short_side(frames: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """(T, H, W, 3) uint8 -> resized like the runtime's first step (same size and interpolation)."""
    pre = FramePreprocessor(preprocessing, validate=False)
    h, w = frames.shape[1:3]
    rh, rw = pre.resized_hw(h, w)
    if (rh, rw) == (h, w):
        return frames
    interp = pre.interpolation((h, w), (rh, rw))
    return np.stack([cv2.resize(f, (rw, rh), interpolation=interp) for f in frames])


def _fixed_offsets(img_w: int, img_h: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """mmaction2's fixed crop grid (more_fix_crop): corners, centre, edge midpoints, quarter points."""
    ws, hs = (img_w - crop_w) // 4, (img_h - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(ws * x, hs * y) for x, y in grid]


def multiscale_crop_box(
    img_hw: tuple[int, int], rng: np.random.Generator, scales: Sequence[float] = MULTISCALE_SCALES, max_wh_scale_gap: int = 1
) -> tuple[int, int, int, int]:
    """One MultiScaleCrop box ``(x, y, w, h)`` for an image of ``img_hw``.

    Crop side lengths are ``int(short_side * scale)``; width and height are drawn from scales at
    most ``max_wh_scale_gap`` steps apart (so the box's aspect ratio varies a little).
    """
    img_h, img_w = img_hw
    base = min(img_h, img_w)
    sizes = [int(base * s) for s in scales]
    pairs = [(w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_wh_scale_gap]
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    offsets = _fixed_offsets(img_w, img_h, crop_w, crop_h)
    x, y = offsets[int(rng.integers(len(offsets)))]
    return x, y, crop_w, crop_h


class _Normalize:
    """uint8 BGR (T, S, S, 3) -> float32 (T, 3, S, S) in the card's channel order and units."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        mean = np.asarray(preprocessing.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(preprocessing.std, np.float32).reshape(1, 3, 1, 1)
        self.scale, self.offset = 1.0 / std, -mean / std
        self.reverse = preprocessing.channel_order == "RGB"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = frames[..., ::-1] if self.reverse else frames
        x = x.transpose(0, 3, 1, 2).astype(np.float32)
        return np.ascontiguousarray(x * self.scale + self.offset)


class TrainTransform:
    """Random training augmentation of one clip; returns ``(float32 (T, 3, S, S), label(s))``.

    Frames may already be resized to the card's short side (pre-rendered datasets do that once);
    the resize is skipped when the size already matches.
    """

    def __init__(self, preprocessing: Preprocessing, config: AugmentConfig = AugmentConfig()) -> None:
        if config.flip_ratio > 0 and not config.flip_pairs:
            raise ValueError(
                "flip_ratio > 0 needs flip_pairs (labels a horizontal flip swaps, e.g. swipe_left<->swipe_right); "
                "flipping direction classes without swapping their labels teaches the model the wrong answer"
            )
        self.preprocessing = preprocessing
        self.config = config
        self.normalize = _Normalize(preprocessing)
        self._swap: dict[int, int] = {}
        for a, b in config.flip_pairs:
            self._swap[a], self._swap[b] = b, a

    def __call__(self, frames: np.ndarray, label: int | np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int | np.ndarray]:
        frames = resize_short_side(frames, self.preprocessing)
        x, y, w, h = multiscale_crop_box(frames.shape[1:3], rng, self.config.scales, self.config.max_wh_scale_gap)
        size = self.preprocessing.crop_size
        crops = np.stack([cv2.resize(f[y : y + h, x : x + w], (size, size), interpolation=cv2.INTER_LINEAR) for f in frames])
        if self.config.flip_ratio > 0 and rng.uniform() < self.config.flip_ratio:
            crops = crops[:, :, ::-1]
            if isinstance(label, np.ndarray):
                label = np.array([self._swap.get(int(v), int(v)) if v >= 0 else int(v) for v in label], label.dtype)
            else:
                label = self._swap.get(int(label), int(label))
        return self.normalize(crops), label


class EvalTransform:
    """Deterministic evaluation preprocessing: exactly the runtime's FramePreprocessor."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessor = FramePreprocessor(preprocessing, validate=False)

    def __call__(self, frames: np.ndarray, label: int | np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int | np.ndarray]:
        return self.preprocessor.preprocess_clip(frames), label
