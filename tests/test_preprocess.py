"""Frame validation and preprocessing against a plain step-by-step reference."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from streamtsm.card import IMAGENET_MEAN, IMAGENET_STD, KINETICS_MEAN, KINETICS_STD, Preprocessing
from streamtsm.preprocess import FrameError, FramePreprocessor, area_halvings, area_third, as_bgr_uint8, preprocess_clip

pytestmark = pytest.mark.runtime  # torch-free: also run with torch blocked


def reference(frame_bgr: np.ndarray, p: Preprocessing, interpolation: int) -> np.ndarray:
    """The obvious way: resize, crop, BGR->RGB if asked, float, (x - mean) / std, HWC->CHW.

    Bilinear: resize the whole frame, then centre-crop (mmaction2). Area: cut out the part of
    the frame the centre crop covers (crop / scale pixels, centred; even sizes when it shrinks 4x
    or more by a factor that is not whole), halve it while the rest still shrinks 2x or more
    (even sizes, even whole factors only), resize it to the crop.
    """
    h, w = frame_bgr.shape[:2]
    if p.resize_hw is not None:
        nh, nw = p.resize_hw
    elif h <= w:
        nh, nw = p.resize_short, round(w * p.resize_short / h)
    else:
        nh, nw = round(h * p.resize_short / w), p.resize_short
    c = p.crop_size
    if interpolation == cv2.INTER_AREA:
        sy, sx = (h / nh, w / nw) if p.resize_hw is not None else (min(h, w) / p.resize_short,) * 2
        wh, ww = round(c * sy), round(c * sx)
        if wh >= 4 * c and ww >= 4 * c and (wh % c or ww % c):
            wh, ww = wh // 2 * 2, ww // 2 * 2
        top, left = (h - wh) // 2, (w - ww) // 2
        img = frame_bgr[top : top + wh, left : left + ww]
        while img.shape[0] % 2 == 0 and img.shape[1] % 2 == 0 and min(img.shape[0], img.shape[1]) >= 4 * c:
            k = img.shape[0] // c if img.shape[0] % c == 0 and img.shape[1] % c == 0 else 0
            if k and (k % 2 or (img.shape[1] // c) % 2):
                break
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        img = cv2.resize(img, (c, c), interpolation=cv2.INTER_AREA)
    else:
        img = cv2.resize(frame_bgr, (nw, nh), interpolation=interpolation)
        top, left = (nh - c) // 2, (nw - c) // 2
        img = img[top : top + c, left : left + c]
    if p.channel_order == "RGB":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    x = (img.astype(np.float64) - np.array(p.mean)) / np.array(p.std)
    return x.transpose(2, 0, 1).astype(np.float32)


CASES = [
    # (preprocessing, frame HxW, interpolation the reference uses)
    (Preprocessing(crop_size=224, resize_short=256), (480, 640), cv2.INTER_LINEAR),
    (Preprocessing(crop_size=224, resize_short=256), (640, 360), cv2.INTER_LINEAR),  # portrait
    (Preprocessing(crop_size=112, resize_short=None, resize_hw=(128, 171), mean=KINETICS_MEAN, std=KINETICS_STD), (240, 320), cv2.INTER_LINEAR),
    (Preprocessing(crop_size=160, resize_short=160, channel_order="BGR", mean=IMAGENET_MEAN[::-1], std=IMAGENET_STD[::-1]), (120, 160), cv2.INTER_LINEAR),  # upscale
    (Preprocessing(crop_size=224, resize_short=256), (1080, 1920), cv2.INTER_AREA),  # shrinks > 2x
    (Preprocessing(crop_size=112, resize_short=None, resize_hw=(128, 171), mean=KINETICS_MEAN, std=KINETICS_STD), (1080, 1920), cv2.INTER_AREA),  # a non-square window, halved once
    (Preprocessing(crop_size=80, resize_short=80), (480, 640), cv2.INTER_AREA),  # the default model: 2x, then 3x
]


@pytest.mark.parametrize("p, hw, interp", CASES)
def test_matches_reference(p: Preprocessing, hw: tuple[int, int], interp: int) -> None:
    rng = np.random.default_rng(hw[0])
    # Smooth content plus noise, so a crop offset or channel mistake changes the numbers.
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]]
    base = np.stack([xx * 255 / hw[1], yy * 255 / hw[0], (xx + yy) % 256], axis=-1)
    frame = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    pre = FramePreprocessor(p)
    out = pre(frame)
    assert out.shape == (3, p.crop_size, p.crop_size) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, reference(frame, p, interp), atol=1e-5, rtol=0)
    # The second call reuses the cached geometry and must give the same result.
    np.testing.assert_array_equal(pre(frame), out)


def test_channel_order_and_normalisation_are_not_swapped() -> None:
    """A pure-blue BGR frame: with RGB order, channel 2 (B) is high and channel 0 (R) low."""
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[..., 0] = 255
    p = Preprocessing(crop_size=32, resize_short=32)
    out = FramePreprocessor(p)(frame)
    np.testing.assert_allclose(out[2], (255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2], atol=1e-5)
    np.testing.assert_allclose(out[0], (0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], atol=1e-5)


@pytest.mark.parametrize("hw, crop, short", [((480, 640), 80, 80), ((720, 1280), 80, 80), ((2160, 3840), 240, 240)])
def test_area_path_is_the_block_mean_of_the_centre_window(hw: tuple[int, int], crop: int, short: int) -> None:
    # Independent of OpenCV: an integer-factor shrink must average each factor x factor block
    # of the centred square window (OpenCV rounds the mean: allow one grey level).
    frame = np.random.default_rng(hw[0]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    pre = FramePreprocessor(Preprocessing(crop_size=crop, resize_short=short, mean=(0, 0, 0), std=(1, 1, 1),
                                          channel_order="BGR"))
    side = min(hw)
    k = side // crop
    top, left = (hw[0] - side) // 2, (hw[1] - side) // 2
    window = frame[top : top + side, left : left + side].astype(np.float64)
    expected = window.reshape(crop, k, crop, k, 3).mean(axis=(1, 3))
    assert pre.area_window(*hw) == (top, left, side, side)
    got = pre.geometry(frame).astype(np.float64)
    assert np.abs(got - expected).max() <= 1.0


def _content(kind: str, hw: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    if kind == "extremes":  # block sums near every rounding boundary
        return rng.choice(np.array([0, 1, 127, 128, 254, 255], np.uint8), (*hw, 3))
    return (rng.integers(0, 2, (*hw, 3)) * 255).astype(np.uint8)  # black and white only


@pytest.mark.parametrize("kind", ["noise", "extremes", "binary"])
@pytest.mark.parametrize("hw, window", [
    ((240, 240), None),  # the default model's 640x480 frame after one halving
    ((240, 320), (0, 40, 240, 240)),  # a 320x240 frame's centre window: a view, not contiguous
    ((672, 672), None),
    ((9, 3), None),  # the smallest shapes, one block wide
    ((3, 3), None),
])
def test_area_third_is_opencvs_area_resize_bit_for_bit(kind: str, hw: tuple[int, int], window) -> None:
    img = _content(kind, hw, seed=hw[0] * 7 + hw[1])
    if window is not None:
        top, left, h, w = window
        img = img[top : top + h, left : left + w]
    expected = cv2.resize(img, (img.shape[1] // 3, img.shape[0] // 3), interpolation=cv2.INTER_AREA)
    got = area_third(img)
    assert got.shape == expected.shape and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("src, dst, halvings", [
    ((480, 480), (80, 80), 1),  # 6 = 2 x 3: halve, then an exact 3x block mean
    ((640, 640), (80, 80), 2),  # 8: twice, then the 2x path itself
    ((320, 320), (80, 80), 1),
    ((720, 720), (80, 80), 0),  # an odd whole factor is one exact block mean already
    ((3840, 3840), (64, 64), 2),  # 60 = 4 x 15
    ((946, 946), (224, 224), 1),  # not whole: halve while the rest still shrinks >= 2x
    ((945, 945), (224, 224), 0),  # odd size: a halving would not be an exact 2x2 mean (area_window avoids it)
    ((300, 300), (224, 224), 0),  # shrinks < 4x: nothing to gain
    ((960, 400), (120, 120), 0),  # one axis shrinks < 4x
])
def test_area_halvings(src: tuple[int, int], dst: tuple[int, int], halvings: int) -> None:
    assert area_halvings(src, dst) == halvings


@pytest.mark.parametrize("hw, crop, short, window", [
    ((1080, 1920), 224, 256, (68, 488, 944, 944)),  # 945 px would be odd: rounded down to halve
    ((720, 1280), 80, 80, (0, 280, 720, 720)),  # a whole factor (9) keeps its exact size
    ((480, 640), 224, 256, None),  # shrinks < 2x: the bilinear path, no window
])
def test_area_window_sizes(hw: tuple[int, int], crop: int, short: int, window: tuple[int, int, int, int] | None) -> None:
    pre = FramePreprocessor(Preprocessing(crop_size=crop, resize_short=short))
    if window is None:
        assert pre.interpolation(hw, pre.resized_hw(*hw)) == cv2.INTER_LINEAR
    else:
        assert pre.area_window(*hw) == window


def test_halved_area_path_stays_close_to_one_area_resize() -> None:
    # 4K to 224 px (a 1890 px window, 8.4x): halved once, then resized 4.2x; smooth content with
    # noise moves by a few grey levels at most, well under a level on average.
    hw = (2160, 3840)
    gx = np.linspace(0, 215, hw[1], dtype=np.float32)[None, :]
    gy = np.linspace(0, 215, hw[0], dtype=np.float32)[:, None]
    frame = np.empty((*hw, 3), np.uint8)  # gradients (cast on assignment) plus uint8 noise: cheap to make
    frame[..., 0], frame[..., 1], frame[..., 2] = gx, gy, (gx + gy) / 2
    frame += np.random.default_rng(4).integers(0, 40, frame.shape, dtype=np.uint8)
    p = Preprocessing(crop_size=224, resize_short=256)
    pre = FramePreprocessor(p)
    top, left, h, w = pre.area_window(*hw)
    assert area_halvings((h, w), (224, 224)) == 1
    one_step = cv2.resize(frame[top : top + h, left : left + w], (224, 224), interpolation=cv2.INTER_AREA)
    diff = np.abs(pre.geometry(frame).astype(int) - one_step.astype(int))
    assert diff.max() <= 6 and diff.mean() < 1.0


def test_antialias_off_uses_linear() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    p = Preprocessing(crop_size=224, resize_short=256)
    pre = FramePreprocessor(p, antialias=False)
    np.testing.assert_allclose(pre(frame), reference(frame, p, cv2.INTER_LINEAR), atol=1e-5)


def test_8k_frame_is_accepted() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (4320, 7680, 3), dtype=np.uint8)
    out = FramePreprocessor(Preprocessing())(frame)
    assert out.shape == (3, 224, 224) and np.isfinite(out).all()


def test_preprocess_clip() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(4)]
    p = Preprocessing(crop_size=64, resize_short=72)
    clip = preprocess_clip(frames, p)
    assert clip.shape == (4, 3, 64, 64) and clip.dtype == np.float32
    pre = FramePreprocessor(p)
    for t in range(4):
        np.testing.assert_array_equal(clip[t], pre(frames[t]))
    with pytest.raises(FrameError, match="no frames"):
        pre.preprocess_clip([])
    with pytest.raises(FrameError, match="clip frame 1"):
        pre.preprocess_clip([frames[0], None])


def test_crop_larger_than_resize_is_refused() -> None:
    with pytest.raises(ValueError, match="crop"):
        FramePreprocessor(Preprocessing(crop_size=224, resize_short=200))
    with pytest.raises(ValueError, match="crop"):
        FramePreprocessor(Preprocessing(crop_size=224, resize_short=None, resize_hw=(128, 171)))


# -- as_bgr_uint8 ------------------------------------------------------------------------------


def test_uint8_bgr_passes_through_without_copy() -> None:
    frame = np.zeros((10, 12, 3), np.uint8)
    assert as_bgr_uint8(frame) is frame


def test_conversions() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    out = as_bgr_uint8(grey)
    assert out.shape == (20, 30, 3) and all((out[..., c] == grey).all() for c in range(3))
    np.testing.assert_array_equal(as_bgr_uint8(grey[..., None]), out)

    bgra = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_bgr_uint8(bgra), bgra[..., :3])

    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = bgr[:, ::-1]  # non-contiguous
    out = as_bgr_uint8(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)

    unit = bgr.astype(np.float32) / 255.0
    np.testing.assert_array_equal(as_bgr_uint8(unit), bgr)
    np.testing.assert_array_equal(as_bgr_uint8((bgr.astype(np.float64) - 0.3).clip(0, None)), bgr)  # rounds
    np.testing.assert_array_equal(as_bgr_uint8(bgr.astype(np.uint16) * 257), bgr)  # 16-bit full range
    np.testing.assert_array_equal(as_bgr_uint8(bgr.astype(np.int64)), bgr)
    np.testing.assert_array_equal(as_bgr_uint8(bgr.astype(">u2") * 257), bgr)  # big-endian


@pytest.mark.parametrize(
    "frame, message",
    [
        (None, "None"),
        ([[1, 2], [3, 4]], "not a numpy array"),
        (np.zeros((0, 10, 3), np.uint8), "no pixels"),
        (np.zeros((10, 10, 3, 2), np.uint8), "dimensions"),
        (np.zeros(100, np.uint8), "dimensions"),
        (np.zeros((10, 10, 2), np.uint8), "channels"),
        (np.zeros((3, 32, 32), np.uint8), "channels"),  # CHW by mistake
        (np.full((10, 10, 3), np.nan, np.float32), "NaN"),
        (np.full((10, 10, 3), np.inf), "NaN or infinite"),
        (np.full((10, 10, 3), -1.0), "normalised"),
        (np.full((10, 10, 3), 300, np.int32), "outside 0-255"),
        (np.zeros((4, 100, 3), np.uint8), "at least 8"),
        (np.broadcast_to(np.uint8(0), (20000, 10, 3)), "16384"),
        (np.zeros((10, 10, 3), bool), "not an image pixel type"),
        (np.zeros((10, 10, 3), complex), "not an image pixel type"),
        (np.zeros((10, 10, 3), object), "not an image pixel type"),
    ],
)
def test_rejections(frame: object, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        as_bgr_uint8(frame)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
    )
)
def test_property_returns_valid_frame_or_frame_error(arr: np.ndarray) -> None:
    try:
        out = as_bgr_uint8(arr)
    except FrameError:
        return
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[:2] == arr.shape[:2]
    assert out.flags.c_contiguous


_valid_shapes = st.tuples(st.integers(8, 20), st.integers(8, 20), st.sampled_from([1, 3, 4]))
_valid_frames = st.one_of(
    hnp.arrays(st.sampled_from([np.float32, np.float64]), _valid_shapes, elements=st.floats(0, 1, width=32)),
    hnp.arrays(st.sampled_from([np.float32, np.float64]), _valid_shapes, elements=st.floats(0, 255, width=32)),
    hnp.arrays(st.sampled_from([np.uint8, np.uint16]), _valid_shapes),
    hnp.arrays(st.sampled_from([np.int16, np.int64]), _valid_shapes, elements=st.integers(0, 255)),
)


@settings(max_examples=100, deadline=None)
@given(_valid_frames)
def test_property_valid_inputs_are_accepted(arr: np.ndarray) -> None:
    out = as_bgr_uint8(arr)
    assert out.shape == (arr.shape[0], arr.shape[1], 3) and out.dtype == np.uint8
    if arr.shape[2] == 3 and arr.dtype.kind == "f" and arr.max() > 1:
        np.testing.assert_array_equal(out, np.rint(arr))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda pre, f: pre(f), None),  # a finished model input: copied
        (lambda pre, f: pre.geometry(f), None),  # a geometry patch: normalised here
        (lambda pre, f: pre(f).astype(np.float64), r"float32 3x32x32 \(FramePreprocessor\) or uint8 32x32x3"),
        (lambda pre, f: pre(f)[:, :16], r"float32 3x32x32 .* got float32 \(3, 16, 32\)"),
        (lambda pre, f: pre.geometry(f)[:16], r"a prepared patch must be 32x32x3"),
        (lambda pre, f: pre(f).tolist(), r"must be a numpy array .* got a list; or leave prepared=None"),
    ],
)
def test_load_takes_either_prepared_form_and_names_both_when_neither(make, message: str | None) -> None:
    pre = FramePreprocessor(Preprocessing(crop_size=32, resize_short=36))
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = np.full((3, 32, 32), np.nan, dtype=np.float32)
    if message is None:
        np.testing.assert_array_equal(pre.load(make(pre, frame), out), pre(frame))
    else:
        with pytest.raises(FrameError, match=message):
            pre.load(make(pre, frame), out)
