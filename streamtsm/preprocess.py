"""Frame validation and model-input preprocessing (numpy + OpenCV only; on the Jetson path).

Two jobs, kept apart:

* :func:`as_bgr_uint8` turns whatever a user pushes (a grey image, a BGRA screenshot, a float
  image from another library, a strided view) into the one frame format the runtime works with:
  ``H x W x 3`` uint8 BGR, C-contiguous. It converts only when the meaning is unambiguous and
  otherwise raises :class:`FrameError` saying what was wrong and what to pass instead, so a bad
  frame fails at the door and not as an OpenCV assertion three modules further down.
* :class:`FramePreprocessor` applies the weights' :class:`~streamtsm.card.Preprocessing`
  (resize, centre crop, channel order, mean/std) and returns ``float32 (3, crop, crop)``.
  It is in the per-frame hot path, so everything that does not depend on the pixels (scale and
  offset vectors, output geometry for a given input size) is computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import cv2
import numpy as np

from streamtsm.card import Preprocessing

#: Frames smaller than this on either side carry no usable content (and break a centre crop).
MIN_SIDE = 8
#: Larger than any real sensor (16K); beyond this an array is almost certainly not an image.
MAX_SIDE = 16384
#: Shrinking by more than this factor switches resize from INTER_LINEAR to INTER_AREA.
AREA_BELOW_SCALE = 0.5

_EXPECTED = "pass an H x W x 3 uint8 BGR numpy array (what cv2.imread / cv2.VideoCapture.read return)"


class FrameError(ValueError):
    """A pushed frame cannot be used; the message says what was wrong and what to pass instead."""


def as_bgr_uint8(frame: Any) -> np.ndarray:
    """Validate ``frame`` and return it as a C-contiguous ``H x W x 3`` uint8 BGR array.

    Accepted and converted (because the meaning is unambiguous):

    * uint8 ``H x W x 3``: returned as is (made contiguous if it is a strided view);
    * grey ``H x W`` or ``H x W x 1``: replicated to three channels;
    * BGRA ``H x W x 4``: alpha dropped (the runtime has no use for transparency);
    * uint16: scaled from 0-65535 to 0-255 (16-bit sensors and PNGs);
    * other integer types whose values all lie in 0-255: cast;
    * float with all values in [0, 1]: scaled by 255 and rounded; float in [0, 255]: rounded.
      (A float frame whose 0-255 values happen to all be <= 1 is read as 0-1; such a frame is
      black to within one grey level either way.)

    Everything else raises :class:`FrameError`: ``None``, non-arrays, empty arrays, wrong
    number of dimensions, channel counts other than 1/3/4, NaN/inf, negative or >255 values,
    booleans, sides below :data:`MIN_SIDE` or above :data:`MAX_SIDE` pixels.
    """
    if frame is None:
        raise FrameError(f"frame is None (the source returned no image, e.g. a failed camera read); {_EXPECTED}")
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame is a {type(frame).__name__}, not a numpy array; {_EXPECTED}")
    arr = np.asarray(frame)  # drops ndarray subclasses (matrix, masked) to a plain view
    if arr.size == 0:
        raise FrameError(f"frame has shape {arr.shape} with no pixels; {_EXPECTED}")
    if arr.ndim not in (2, 3):
        raise FrameError(f"frame has {arr.ndim} dimensions (shape {arr.shape}); {_EXPECTED}")
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels not in (1, 3, 4):
        raise FrameError(
            f"frame has {channels} channels (shape {arr.shape}); expected 3 (BGR), 1 (grey) or 4 (BGRA). "
            "If the channels come first (C x H x W), transpose with frame.transpose(1, 2, 0)"
        )
    height, width = arr.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise FrameError(f"frame is {height}x{width} pixels; both sides must be at least {MIN_SIDE}")
    if max(height, width) > MAX_SIDE:
        raise FrameError(
            f"frame is {height}x{width} pixels; sides above {MAX_SIDE} are not images this runtime accepts "
            "(downscale it first)"
        )
    arr = _to_uint8(arr)
    if channels == 3:
        return np.ascontiguousarray(arr)
    if channels == 4:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGRA2BGR)
    grey = np.ascontiguousarray(arr.reshape(height, width))
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Convert pixel values to uint8 or raise FrameError; shape is untouched."""
    kind = arr.dtype.kind
    if kind in "iuf" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        # Exact rounding of v * 255 / 65535 in integer arithmetic (no float copy of a big frame).
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise FrameError(
                f"frame has dtype {arr.dtype} with values in [{lo}, {hi}], outside 0-255; "
                "scale it to 0-255 and pass uint8"
            )
        return arr.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(arr).all():
            raise FrameError(f"frame ({arr.dtype}) contains NaN or infinite values; {_EXPECTED}")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 255.0:
            raise FrameError(
                f"frame ({arr.dtype}) has values in [{lo:g}, {hi:g}]; float frames must be in [0, 1] or "
                "[0, 255] (it looks already normalised: pass the raw image, the runtime normalises it)"
            )
        scaled = arr * 255.0 if hi <= 1.0 else arr
        return np.rint(scaled).astype(np.uint8)
    raise FrameError(f"frame has dtype {arr.dtype}, which is not an image pixel type; {_EXPECTED}")


class _Geometry(NamedTuple):
    """How one frame size is cut down: take ``window`` (top, left, h, w), halve it ``halvings``
    times (area), resize it to ``resized_hw`` with ``interpolation``, crop at ``(top, left)``."""

    window: tuple[int, int, int, int]
    resized_hw: tuple[int, int]
    top: int
    left: int
    interpolation: int
    halvings: int = 0


def area_halvings(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    """How many exact 2x area halvings to run before an area resize from ``src_hw`` to ``dst_hw``.

    OpenCV's 2x area path is vectorised and ~4x cheaper per input pixel than its general one,
    so a big shrink first halves while the rest stays a shrink of at least 2x. Halving only
    sizes that are even keeps it an exact 2x2 mean; a whole factor is halved only while it is
    even, so 6 = 2 x 3 or 60 = 4 x 15 still end as exact block means (odd whole factors, such as
    720 to 80, are one block mean already and are left alone).
    """
    (h, w), (th, tw) = src_hw, dst_hw
    n = 0
    while h % 2 == 0 and w % 2 == 0 and h >= 4 * th and w >= 4 * tw:
        whole = h % th == 0 and w % tw == 0
        if whole and ((h // th) % 2 or (w // tw) % 2):
            break
        h, w, n = h // 2, w // 2, n + 1
    return n


def area_third(img: np.ndarray) -> np.ndarray:
    """An exact 3x area shrink (each 3x3 block's rounded mean), bit-identical to ``cv2.resize`` with
    ``INTER_AREA``, at about half its cost: OpenCV has a vectorised path for 2x only, while its
    box filter is vectorised for any size; the filter's 3x3 means at every third pixel are the
    blocks' means. A mean of 9 integers is never a tie, so the rounding cannot differ either.
    The default model takes this path for 640x480 (after one halving) and 320x240 frames.
    """
    return cv2.boxFilter(img, -1, (3, 3), normalize=True, borderType=cv2.BORDER_REPLICATE)[1::3, 1::3]


class FramePreprocessor:
    """``BGR uint8 H x W x 3`` -> ``float32 (3, crop, crop)`` for the weights' card.

    Steps: resize (short side to ``resize_short`` keeping aspect, or exactly ``resize_hw``),
    centre crop ``crop_size`` (offset ``(size - crop) // 2``, as mmaction2's CenterCrop), put
    channels in ``channel_order``, then ``(x - mean) / std``.

    Resize: ``cv2.INTER_LINEAR`` (what mmaction2/mmcv use for training) unless the image shrinks
    by more than 2x (scale < :data:`AREA_BELOW_SCALE`), where bilinear only looks at 2x2
    neighbours and aliases badly (a 4K or 8K camera frame down to 256); there ``cv2.INTER_AREA``
    averages all covered pixels, which is closer to the antialiased PIL resize the official TSM
    weights were trained with. Pass ``antialias=False`` to always use INTER_LINEAR.

    On that area path only the window of the frame that the centre crop covers is resized,
    straight to ``crop x crop`` (:meth:`area_window`): the pixels outside the crop are never
    averaged, and when the window is a whole multiple of the crop (640x480 or 1280x720 to a
    short side of 80, 4K to 240) OpenCV takes its integer-factor path, ~4x faster than resizing
    the whole frame first (1.4 -> 0.36 ms for 640x480 to 80 px on the VM of
    ``benchmarks/results/multistream.md``). Big shrinks first halve the window with OpenCV's
    vectorised 2x path (:func:`area_halvings`; 4K to 224 px 14 -> 5.3 ms), and an exact 3x left
    at the end is a box filter (:func:`area_third`, the same pixels): 640x480 to 80 px, a halving
    then a 3x, takes 0.15 ms where the halving and a 3x area resize took 0.27 ms (320x240: 0.08
    vs 0.17 ms; one after the other on a 2-core VM). The result stays within one grey level of
    the exact block mean for whole factors, a few levels of a single area resize otherwise. The
    bilinear path resizes the whole frame and then crops, exactly as mmaction2 does.

    Resize happens first, on uint8, so the cost of an 8K frame is one OpenCV resize; the float
    work is on the crop only. Normalisation is one fused multiply-add with precomputed
    ``scale = 1/std`` and ``offset = -mean/std`` per channel.
    """

    def __init__(self, preprocessing: Preprocessing, *, antialias: bool = True, validate: bool = True) -> None:
        self.preprocessing = preprocessing
        self.antialias = antialias
        self.validate = validate
        crop = preprocessing.crop_size
        if preprocessing.resize_short is not None and preprocessing.resize_short < crop:
            raise ValueError(
                f"preprocessing.resize_short={preprocessing.resize_short} is smaller than crop_size={crop}; "
                "the centre crop would not fit"
            )
        if preprocessing.resize_hw is not None and min(preprocessing.resize_hw) < crop:
            raise ValueError(
                f"preprocessing.resize_hw={preprocessing.resize_hw} is smaller than crop_size={crop} on one side"
            )
        mean = np.asarray(preprocessing.mean, dtype=np.float64)
        std = np.asarray(preprocessing.std, dtype=np.float64)
        # Card mean/std are in channel_order; the crop is BGR until reordered. The reorder is a
        # view (reverse channel axis), so the vectors stay in channel_order.
        self._reverse_channels = preprocessing.channel_order == "RGB"
        self._scale = (1.0 / std).astype(np.float32).reshape(3, 1, 1)
        self._offset = (-mean / std).astype(np.float32).reshape(3, 1, 1)
        self._geometry_for: tuple[int, int] | None = None
        self._geometry = _Geometry((0, 0, 0, 0), (0, 0), 0, 0, cv2.INTER_LINEAR)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        c = self.preprocessing.crop_size
        return (3, c, c)

    def resized_hw(self, height: int, width: int) -> tuple[int, int]:
        """Size (H, W) of a ``height x width`` frame after the resize step."""
        p = self.preprocessing
        if p.resize_hw is not None:
            return (int(p.resize_hw[0]), int(p.resize_hw[1]))
        short = p.resize_short
        assert short is not None
        if height <= width:
            return (short, max(short, int(round(width * short / height))))
        return (max(short, int(round(height * short / width))), short)

    def interpolation(self, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
        """The cv2 interpolation flag used for a resize from ``src_hw`` to ``dst_hw``."""
        scale = min(dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1])
        if self.antialias and scale < AREA_BELOW_SCALE:
            return cv2.INTER_AREA
        return cv2.INTER_LINEAR

    def area_window(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, h, w)``: the part of a ``height x width`` frame the centre crop covers.

        Its size is the crop divided by the resize step's scale on each axis (one scale for a
        short-side resize, so the window is square), rounded to whole pixels, centred. A window
        that shrinks 4x or more by a factor that is not whole is rounded down to even sizes (945
        -> 944 px for 1080p to 224): then it can be halved exactly first (:func:`area_halvings`;
        1080p to 224 px 5.9 -> 2.7 ms), at the cost of a shift of half a frame pixel.
        """
        p, crop = self.preprocessing, self.preprocessing.crop_size
        if p.resize_hw is not None:
            scale_y, scale_x = height / p.resize_hw[0], width / p.resize_hw[1]
        else:
            assert p.resize_short is not None
            scale_y = scale_x = min(height, width) / p.resize_short
        h, w = min(height, round(crop * scale_y)), min(width, round(crop * scale_x))
        if h >= 4 * crop and w >= 4 * crop and (h % crop or w % crop):
            h, w = h - h % 2, w - w % 2
        return (height - h) // 2, (width - w) // 2, h, w

    def _plan(self, height: int, width: int) -> "_Geometry":
        # Sources deliver frames of one size; recompute the geometry only when it changes.
        if self._geometry_for != (height, width):
            rh, rw = self.resized_hw(height, width)
            crop = self.preprocessing.crop_size
            interp = self.interpolation((height, width), (rh, rw))
            if interp == cv2.INTER_AREA:
                window = self.area_window(height, width)
                self._geometry = _Geometry(window, (crop, crop), 0, 0, interp, area_halvings(window[2:], (crop, crop)))
            else:
                self._geometry = _Geometry((0, 0, height, width), (rh, rw), (rh - crop) // 2, (rw - crop) // 2, interp)
            self._geometry_for = (height, width)
        return self._geometry

    def geometry(self, frame: np.ndarray) -> np.ndarray:
        """The resize and centre crop only: ``uint8 (crop, crop, 3)`` BGR (a view where possible).

        This is the per-pixel-expensive part; a capture thread can run it ahead of the model.
        """
        img = as_bgr_uint8(frame) if self.validate else frame
        g = self._plan(img.shape[0], img.shape[1])
        y, x, h, w = g.window
        if (h, w) != img.shape[:2]:
            img = img[y : y + h, x : x + w]
        for _ in range(g.halvings):
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if g.resized_hw != img.shape[:2]:
            if g.interpolation == cv2.INTER_AREA and img.shape[:2] == (3 * g.resized_hw[0], 3 * g.resized_hw[1]):
                img = area_third(img)
            else:
                img = cv2.resize(img, (g.resized_hw[1], g.resized_hw[0]), interpolation=g.interpolation)
        crop = self.preprocessing.crop_size
        return img[g.top : g.top + crop, g.left : g.left + crop]

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One frame -> C-contiguous ``float32 (3, crop, crop)``.

        ``out`` (a preallocated ``float32 (3, crop, crop)`` array) avoids an allocation per frame
        on the hot path; it is written only after the frame has been validated.
        """
        return self.normalise(self.geometry(frame), out)

    def load(self, prepared: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write a frame prepared ahead of time into ``out``: a model input from :meth:`__call__`
        (``float32 (3, crop, crop)``, copied) or a patch from :meth:`geometry` (normalised here)."""
        crop = self.preprocessing.crop_size
        if not isinstance(prepared, np.ndarray):
            raise FrameError(f"a prepared frame must be a numpy array (float32 3x{crop}x{crop} from FramePreprocessor, "
                             f"or uint8 {crop}x{crop}x3 from its geometry), got a {type(prepared).__name__}; "
                             "or leave prepared=None")
        if prepared.dtype == np.float32 and prepared.shape == (3, crop, crop):
            np.copyto(out, prepared)
            return out
        if prepared.dtype != np.uint8:
            raise FrameError(f"a prepared frame must be float32 3x{crop}x{crop} (FramePreprocessor) or uint8 "
                             f"{crop}x{crop}x3 (FramePreprocessor.geometry), got {prepared.dtype} {prepared.shape}")
        return self.normalise(prepared, out)

    def normalise(self, patch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """A ``uint8 (crop, crop, 3)`` BGR patch from :meth:`geometry` -> ``float32 (3, crop, crop)``."""
        crop = self.preprocessing.crop_size
        if patch.shape != (crop, crop, 3):
            raise FrameError(f"a prepared patch must be {crop}x{crop}x3 (from FramePreprocessor.geometry), got {patch.shape}")
        if self._reverse_channels:
            patch = patch[:, :, ::-1]
        chw = patch.transpose(2, 0, 1)
        if out is None:
            out = np.empty((3, crop, crop), dtype=np.float32)
        np.multiply(chw, self._scale, out=out, casting="unsafe")
        out += self._offset
        return out

    def preprocess_clip(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``T`` frames (a sequence, or an array ``T x H x W x C``) -> ``float32 (T, 3, crop, crop)``."""
        if frames is None or len(frames) == 0:
            raise FrameError("clip has no frames; pass a non-empty sequence of H x W x 3 uint8 BGR frames")
        crop = self.preprocessing.crop_size
        out = np.empty((len(frames), 3, crop, crop), dtype=np.float32)
        for t, frame in enumerate(frames):
            try:
                self(frame, out=out[t])
            except FrameError as exc:
                raise FrameError(f"clip frame {t}: {exc}") from None
        return out


def preprocess_clip(frames: Sequence[np.ndarray] | np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Convenience: preprocess a clip with a one-off :class:`FramePreprocessor`."""
    return FramePreprocessor(preprocessing).preprocess_clip(frames)
