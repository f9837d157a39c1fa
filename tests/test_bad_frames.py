"""Bad input to ``Recognizer.push`` (and to a run's source), and concurrent use of one Recognizer.

Every bad frame is either converted (when its meaning is unambiguous) or rejected with a
:class:`~streamtsm.FrameError` that says what was wrong -- and a rejected frame leaves no trace:
the property test interleaves random bad frames with good ones and checks that the
predictions for the good frames are exactly those of a Recognizer that only saw the good ones.
The engine is the numpy fake of tests/fakes.py (64 px): its logits depend on each frame and on
the carried state, so a corrupted state or a wrongly converted frame shows.
"""

from __future__ import annotations

import functools
import re
import threading

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import FakeOnlineEngine, fake_card
from streamtsm.sources import Source
from streamtsm.preprocess import FrameError, FramePreprocessor
from streamtsm.recognizer import Recognizer, RecognizerError
from streamtsm.session import SessionError

pytestmark = pytest.mark.runtime

H, W = 48, 64


@functools.lru_cache(maxsize=1)
def shared_backend() -> FakeOnlineEngine:
    """One engine for all tests: a Recognizer does not own an engine it is given, and the
    stream state lives in each Recognizer's session, so Recognizers sharing it are independent."""
    return FakeOnlineEngine(fake_card(crop=64, resize=72, fps=30.0, classes=("a", "b", "c", "d", "e"), background=()))


def recognizer(**kw) -> Recognizer:
    """A fresh Recognizer; smoothing=1 so each Prediction shows that step's probabilities."""
    return Recognizer(shared_backend(), smoothing=kw.pop("smoothing", 1), **kw)


GOOD = [np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8) for i in range(6)]


# -- each bad input: converted or rejected clearly ----------------------------------------------

REJECTED = {
    "None": (None, r"frame is None"),
    "list": ([[0, 0, 0]] * 16, r"not a numpy array"),
    "empty": (np.zeros((0, 0, 3), np.uint8), r"no pixels"),
    "empty rows": (np.zeros((0, W, 3), np.uint8), r"no pixels"),
    "1x1": (np.zeros((1, 1, 3), np.uint8), r"1x1 pixels; both sides must be at least"),
    "1-D": (np.zeros(300, np.uint8), r"1 dimensions"),
    "4-D batch": (np.zeros((2, H, W, 3), np.uint8), r"4 dimensions"),
    "CHW": (np.zeros((3, H, W), np.uint8), r"64 channels.*transpose"),
    "2 channels": (np.zeros((H, W, 2), np.uint8), r"2 channels"),
    "NaN float": (np.full((H, W, 3), np.nan, np.float32), r"NaN or infinite"),
    "inf float": (np.where(np.eye(H, W)[..., None] > 0, np.inf, 0.5).astype(np.float64) * np.ones(3), r"NaN or infinite"),
    "normalised float": (np.full((H, W, 3), -1.5, np.float32), r"looks already normalised"),
    "float > 255": (np.full((H, W, 3), 300.0, np.float32), r"\[300, 300\]"),
    "int16 negative": (np.full((H, W, 3), -5, np.int16), r"outside 0-255"),
    "int32 > 255": (np.full((H, W, 3), 4096, np.int32), r"outside 0-255"),
    "bool": (np.ones((H, W, 3), bool), r"dtype bool"),
    "complex": (np.ones((H, W, 3), np.complex64), r"dtype complex64"),
    "object": (np.empty((H, W, 3), object), r"dtype object"),
    "17K": (np.zeros((16, 17000, 3), np.uint8), r"sides above 16384"),
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_unusable_frame_is_rejected_with_a_clear_error_and_leaves_no_trace(name: str) -> None:
    frame, message = REJECTED[name]
    rec, ref = recognizer(), recognizer()
    before = [rec.push(GOOD[0], 0.0), ref.push(GOOD[0], 0.0)]
    with pytest.raises(FrameError, match=message) as info:
        rec.push(frame, 1 / 30)
    assert re.search(r"pass |must|transpose|downscale|scale it", str(info.value)), "the error should say how to fix it"
    after, expected = rec.push(GOOD[1], 1 / 30), ref.push(GOOD[1], 1 / 30)
    assert before[0] is not None and after is not None and expected is not None
    assert after.frame_index == expected.frame_index == 1
    np.testing.assert_allclose(after.probabilities, expected.probabilities, rtol=1e-5, atol=1e-7)


def test_bad_timestamps_are_rejected_and_leave_no_trace() -> None:
    rec, ref = recognizer(), recognizer()
    rec.push(GOOD[0], 0.0), ref.push(GOOD[0], 0.0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(SessionError, match="timestamp must be a finite number"):
            rec.push(GOOD[1], bad)
    np.testing.assert_allclose(rec.push(GOOD[1], 1 / 30).probabilities, ref.push(GOOD[1], 1 / 30).probabilities, rtol=1e-5)


def _grey(img):
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


# (how the user's frame is made from a BGR uint8 image, what it must be equivalent to)
CONVERTED = {
    "grey HxW": (_grey, lambda img: cv2.cvtColor(_grey(img), cv2.COLOR_GRAY2BGR)),
    "grey HxWx1": (lambda img: _grey(img)[..., None], lambda img: cv2.cvtColor(_grey(img), cv2.COLOR_GRAY2BGR)),
    "BGRA": (lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2BGRA), lambda img: img),
    "float32 0-1": (lambda img: img.astype(np.float32) / 255.0, lambda img: img),
    "float64 0-255": (lambda img: img.astype(np.float64), lambda img: img),
    "uint16": (lambda img: img.astype(np.uint16) * 257, lambda img: img),
    "int64 in range": (lambda img: img.astype(np.int64), lambda img: img),
    "big-endian uint16": (lambda img: (img.astype(np.uint16) * 257).astype(">u2"), lambda img: img),
    "non-contiguous (strided)": (lambda img: np.repeat(np.repeat(img, 2, 0), 2, 1)[::2, ::2], lambda img: img),
    "non-contiguous (RGB view flipped back)": (lambda img: img[:, :, ::-1][:, :, ::-1], lambda img: img),
    "Fortran order": (np.asfortranarray, lambda img: img),
    "read-only": (lambda img: _readonly(img), lambda img: img),
}


def _readonly(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    out.setflags(write=False)
    return out


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_unambiguous_frames_are_converted_and_predict_like_their_bgr_equivalent(name: str) -> None:
    make, equivalent = CONVERTED[name]
    rec, ref = recognizer(), recognizer()
    for i, img in enumerate(GOOD[:3]):
        user_frame = make(img)
        original = user_frame.copy()
        got, expected = rec.push(user_frame, i / 30), ref.push(equivalent(img), i / 30)
        np.testing.assert_allclose(got.probabilities, expected.probabilities, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(user_frame, original)  # the caller's array is not modified


def test_8k_frame_is_accepted_and_equals_its_downscaled_version() -> None:
    big = cv2.resize(GOOD[2], (7680, 4320), interpolation=cv2.INTER_NEAREST)
    small = cv2.resize(big, (128, 72), interpolation=cv2.INTER_AREA)
    rec = recognizer()
    got = rec.push(big, 0.0)
    assert got is not None and np.isfinite(got.probabilities).all()
    # Same content after the resize step (both go to the 72 px short side; the 8K frame's area
    # path halves twice first, each uint8 stage rounding: within one grey level)
    pre = FramePreprocessor(rec.engine.card.preprocessing)
    diff = pre.geometry(big).astype(int) - pre.geometry(small).astype(int)
    assert np.abs(diff).max() <= 1


# -- property: bad frames interleaved with good ones change nothing ------------------------------

bad_names = st.sampled_from(sorted(REJECTED))
steps = st.lists(
    st.one_of(st.tuples(st.just("good"), st.integers(0, len(GOOD) - 1)), st.tuples(st.just("bad"), bad_names)),
    min_size=1,
    max_size=10,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_bad_frames_interleaved_with_good_ones_do_not_change_any_prediction(ops) -> None:
    rec, ref = recognizer(), recognizer()
    got, expected = [], []
    t = 0.0
    for kind, arg in ops:
        if kind == "bad":
            # the bad frame carries the *next* good frame's timestamp: had the sampler advanced,
            # that good frame would be skipped as a duplicate and the test would fail
            with pytest.raises(FrameError):
                rec.push(REJECTED[arg][0], t)
            continue
        got.append(rec.push(GOOD[arg], t))
        expected.append(ref.push(GOOD[arg], t))
        t += 1 / 30
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g is None) == (e is None)
        if g is not None:
            assert (g.frame_index, g.timestamp, g.label) == (e.frame_index, e.timestamp, e.label)
            np.testing.assert_allclose(g.probabilities, e.probabilities, rtol=1e-5, atol=1e-7)
    backend = rec.engine
    for a, b in zip(backend.state_arrays(rec.session.state), ref.engine.state_arrays(ref.session.state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_history_matters_for_this_model() -> None:
    """Guard for the property test: with this model the state changes predictions, so a
    corrupted state would be visible."""
    rec = recognizer()
    rec.push(GOOD[0], 0.0)
    with_history = rec.push(GOOD[1], 1 / 30).probabilities
    alone = recognizer().push(GOOD[1], 0.0).probabilities
    assert np.abs(with_history - alone).max() > 1e-3


# -- a source that delivers odd frames, through run() -------------------------------------------


class ListSource(Source):
    """Delivers the given images in order (a camera driver returning odd formats)."""

    def __init__(self, images: list) -> None:
        super().__init__("list")
        self.images = images
        self._i = 0

    def _open(self) -> None:
        self._i = 0

    def _read(self):
        if self._i >= len(self.images):
            return None
        image = self.images[self._i]
        self._i += 1
        return self._make_frame(image, media_time_s=(self._i - 1) / 30)

    def _close(self) -> None:
        pass


def test_run_converts_odd_source_frames_and_goes_on() -> None:
    images = [GOOD[0], _grey(GOOD[1]), cv2.cvtColor(GOOD[2], cv2.COLOR_BGR2BGRA), GOOD[3]]
    source = ListSource(images)
    predictions = list(recognizer().run(source))
    assert [p.frame_index for p in predictions] == [0, 1, 2, 3]
    assert not source.is_open


def test_run_stops_with_a_clear_frame_error_and_releases_the_source() -> None:
    images = [GOOD[0], GOOD[1], np.full((H, W, 3), np.nan, np.float32), GOOD[3]]
    source = ListSource(images)
    rec = recognizer()
    seen = []
    with pytest.raises(FrameError, match="NaN"):
        for prediction in rec.run(source):
            seen.append(prediction.frame_index)
    assert seen == [0, 1]
    assert not source.is_open and rec.capture_stats is not None and not rec.capture_stats.running
    assert list(p.frame_index for p in rec.run(ListSource([GOOD[0]]))) == [0]  # usable again


# -- thread safety, as documented in streamtsm.recognizer ---------------------------------------


SAMPLE_EVERY_PUSH = 1_000_000.0


def test_concurrent_push_from_two_threads_is_serialised() -> None:
    """The docs promise push is serialised by one lock. Two threads push at full speed with
    timestamp=None (the Recognizer takes "now" under its lock) and a sampling rate high enough to
    keep every frame (1 MHz: a push of these small frames took 80 us on a fast CPU, so 10 kHz was
    not); replaying the frames serially in the order the Recognizer numbered them must reproduce
    every prediction exactly. A race on the state would break the chain."""
    rec = recognizer(fps=SAMPLE_EVERY_PUSH)
    results: dict[int, tuple[int, object]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(image_ids: list[int]) -> None:
        try:
            barrier.wait()
            for image_id in image_ids:
                p = rec.push(GOOD[image_id])
                if p is not None:
                    results[p.frame_index] = (image_id, p)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=([0, 1, 2] * 6,)), threading.Thread(target=worker, args=([3, 4, 5] * 6,))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(36)), "frame numbers lost or duplicated"
    replay = recognizer(fps=SAMPLE_EVERY_PUSH)
    for i in range(36):
        image_id, p = results[i]
        q = replay.push(GOOD[image_id], p.timestamp)
        assert q is not None and q.frame_index == i
        np.testing.assert_allclose(q.probabilities, p.probabilities, rtol=1e-5, atol=1e-7)


def test_second_concurrent_run_is_refused_clearly() -> None:
    rec = recognizer()
    first = rec.iter_frames("synthetic", realtime=False, size=(H, W))
    next(first)
    with pytest.raises(RecognizerError, match="already running a source.*one Recognizer per camera"):
        next(rec.iter_frames("synthetic", realtime=False, size=(H, W)))
    first.close()
    assert next(rec.iter_frames("synthetic", realtime=False, size=(H, W)))[0].index == 0
