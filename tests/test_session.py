"""Sessions: sampling by timestamp, typed resets, ring buffer, timings, failures that change nothing.

Runtime logic, so the engines are the numpy fakes (no torch): their logits depend on each
frame and on the carried state, which is what these tests need to see.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from fakes import FakeClipEngine, FakeOnlineEngine, fake_card
from streamtsm.backends.base import BackendError
from streamtsm.preprocess import FrameError, FramePreprocessor
from streamtsm.sampling import ResetReason
from streamtsm.session import SessionError, StreamingSession, WindowSession, open_session

pytestmark = pytest.mark.runtime


@pytest.fixture
def online():
    return FakeOnlineEngine(fake_card(fps=10.0, max_gap_s=1.0))


def _frames(n: int, seed: int = 0, size=(48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def test_streaming_equals_stepping_the_backend(online):
    frames = _frames(6)
    session = StreamingSession(online, sample=False)
    pre = FramePreprocessor(online.card.preprocessing)
    state = online.init_state(1)
    for i, f in enumerate(frames):
        out = session.push(f, timestamp=i * 0.1, frame_index=i)
        expected, state = online.step(pre(f)[None], state)
        np.testing.assert_array_equal(out.logits, expected[0])
        assert out.frame_index == i and out.frame_range is None
    # outputs depend on the past (the state is really carried)
    fresh = StreamingSession(online, sample=False).push(frames[-1], 0.0)
    assert not np.allclose(fresh.logits, out.logits)


def test_every_output_has_stage_timings(online):
    session = StreamingSession(online, sample=False)
    for i, f in enumerate(_frames(3)):
        t = dataclasses.asdict(session.push(f, i * 0.1, capture_wait_ms=2.5).timings)
        assert t["capture_wait_ms"] == 2.5
        assert t["preprocess_ms"] > 0 and t["inference_ms"] > 0 and t["postprocess_ms"] == 0
        assert t["end_to_end_ms"] >= t["preprocess_ms"] + t["inference_ms"]


@pytest.mark.parametrize("jitter_s", [0.0, 0.006])
def test_30fps_into_10fps_keeps_a_third_by_timestamp(online, jitter_s):
    rng = np.random.default_rng(1)
    image = _frames(1)[0]
    session = StreamingSession(online)
    kept = []
    for i in range(90):
        ts = 100.0 + i / 30.0 + rng.uniform(-jitter_s, jitter_s)
        if session.push(image, ts, frame_index=i) is not None:
            kept.append(ts)
    assert len(kept) == 30
    gaps = np.diff(kept)
    assert np.all(np.abs(gaps - 0.1) < 0.034 + 2 * jitter_s)  # never two in one slot, never a slot skipped twice
    assert abs(np.mean(gaps) - 0.1) < 0.002
    assert session.effective_fps == pytest.approx(10.0, rel=0.05)
    assert session.input_fps == pytest.approx(30.0, rel=0.05)


def test_dropped_frames_do_not_shift_the_grid(online):
    image = _frames(1)[0]
    session = StreamingSession(online)
    # a 30 fps stream with frames 10..19 missing (a slow consumer dropped them)
    stamps = [i / 30.0 for i in range(60) if not 10 <= i < 20]
    kept = [t for t in stamps if session.push(image, t) is not None]
    slots = np.round(np.array(kept) * 10.0)  # 10 fps grid from t=0
    assert np.all(np.abs(np.array(kept) * 10.0 - slots) <= 0.5)
    assert len(set(slots)) == len(slots)


def test_slower_source_keeps_every_frame(online):
    image = _frames(1)[0]
    session = StreamingSession(online)
    outs = [session.push(image, i / 6.0) for i in range(12)]
    assert all(o is not None for o in outs)
    assert session.effective_fps == pytest.approx(6.0, rel=0.01)


def test_gap_longer_than_max_gap_resets_to_a_fresh_state(online):
    frames = _frames(8, seed=3)
    session = StreamingSession(online, sample=False)
    for i, f in enumerate(frames[:4]):
        session.push(f, i * 0.1)
    after_gap = [session.push(f, 10.0 + i * 0.1) for i, f in enumerate(frames[4:])]
    assert after_gap[0].reset.reason is ResetReason.GAP and "gap" in after_gap[0].reset.message
    assert [o.reset for o in after_gap[1:]] == [None, None, None]
    fresh = StreamingSession(online, sample=False)
    for got, f, i in zip(after_gap, frames[4:], range(4)):
        np.testing.assert_array_equal(got.logits, fresh.push(f, i * 0.1).logits)


def test_gap_within_max_gap_keeps_the_state(online):
    frames = _frames(3, seed=4)
    session = StreamingSession(online, sample=False)
    session.push(frames[0], 0.0)
    out = session.push(frames[1], 0.9)
    assert out.reset is None


def test_source_change_and_time_reversal_reset(online):
    frames = _frames(3, seed=5)
    session = StreamingSession(online, sample=False)
    first = session.push(frames[0], 0.0, source="cam-a")
    assert first.reset.reason is ResetReason.STREAM_START
    out = session.push(frames[1], 0.1, source="cam-b")
    assert out.reset.reason is ResetReason.SOURCE_CHANGE and "source changed" in out.reset.message
    out = session.push(frames[2], 0.05, source="cam-b")
    assert out.reset.reason is ResetReason.TIME_REVERSAL and "backwards" in out.reset.message
    np.testing.assert_array_equal(out.logits, StreamingSession(online).push(frames[2], 0.0).logits)


def test_bad_frame_leaves_state_and_sampler_untouched(online):
    frames = _frames(4, seed=6)
    clean = StreamingSession(online, sample=False)
    dirty = StreamingSession(online, sample=False)
    for i, f in enumerate(frames):
        expected = clean.push(f, i * 0.1)
        if i == 2:
            for bad in (None, np.zeros((0, 0, 3), np.uint8), np.full((32, 32, 3), np.nan, np.float32), "x"):
                with pytest.raises(FrameError):
                    dirty.push(bad, i * 0.1)
        got = dirty.push(f, i * 0.1)
        np.testing.assert_array_equal(got.logits, expected.logits)
    assert dirty.frames_kept == clean.frames_kept == 4


def test_explicit_reset_equals_fresh_session(online):
    frames = _frames(3, seed=7)
    session = StreamingSession(online, sample=False)
    session.push(frames[0], 0.0)
    session.reset()
    out = session.push(frames[1], 0.1)
    assert out.reset.reason is ResetReason.CALLER and out.reset.message == "reset by caller"
    np.testing.assert_array_equal(out.logits, StreamingSession(online).push(frames[1], 5.0).logits)


def test_online_session_refuses_window_arguments(online):
    with pytest.raises(SessionError, match="online model"):
        open_session(online, window=8)


# ---------------------------------------------------------------------------- window models


@pytest.fixture
def clip_backend():
    engine = FakeClipEngine(fake_card(online=False, crop=32, clip_len=4, fps=15.0))
    with pytest.raises(SessionError, match="window"):
        StreamingSession(engine)
    return engine


def _write_video(path, n: int, fps: float = 15.0) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for _ in range(n):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    cap.release()
    assert len(decoded) == n
    return decoded


def test_window_session_one_prediction_per_stride_over_a_real_file(clip_backend, tmp_path):
    from streamtsm.sources import open_source
    from streamtsm.preprocess import preprocess_clip

    decoded = _write_video(tmp_path / "clip.avi", 14)
    session = WindowSession(clip_backend, stride=2)
    assert session.window == 4 and isinstance(open_session(clip_backend), WindowSession)
    outputs = []
    with open_source(str(tmp_path / "clip.avi")) as source:
        for frame in source:
            out = session.push(frame.image, frame.media_time_s, frame_index=frame.index)
            if out is not None:
                outputs.append(out)
    # full at frame 3, then every 2 frames: 3, 5, 7, 9, 11, 13
    assert [o.frame_range for o in outputs] == [(i - 3, i) for i in (3, 5, 7, 9, 11, 13)]
    assert [o.frame_index for o in outputs] == [3, 5, 7, 9, 11, 13]
    for out in outputs:
        first, last = out.frame_range
        clip = preprocess_clip(decoded[first : last + 1], clip_backend.card.preprocessing)  # (T, 3, H, W)
        expected = clip_backend.run_clip(clip.transpose(1, 0, 2, 3)[None])
        np.testing.assert_allclose(out.logits, expected[0], rtol=1e-5, atol=1e-5)
        assert out.timings.inference_ms > 0 and out.timings.preprocess_ms > 0


def test_window_session_gap_empties_the_window(clip_backend):
    frames = _frames(6, seed=8)
    session = WindowSession(clip_backend, stride=1, sample=False)
    outs = [session.push(f, i * 0.1, frame_index=i) for i, f in enumerate(frames[:5])]
    assert [o is not None for o in outs] == [False, False, False, True, True]
    assert session.push(frames[5], 30.0, frame_index=5) is None  # refilling after the gap
    assert session.frames_buffered == 1
    outs = [session.push(f, 30.0 + i * 0.1, frame_index=6 + i) for i, f in enumerate(_frames(3, seed=9))]
    assert outs[-1].reset.reason is ResetReason.GAP  # the first output after the gap reports it


def test_a_failing_step_leaves_state_and_sampler_untouched():
    frames = _frames(5, seed=12)
    clean = StreamingSession(FakeOnlineEngine(), sample=False)
    dirty = StreamingSession(FakeOnlineEngine(fail_on_step=2), sample=False)
    for i, f in enumerate(frames):
        expected = clean.push(f, i * 0.1)
        if i == 2:
            with pytest.raises(BackendError, match="injected"):
                dirty.push(f, i * 0.1)
        got = dirty.push(f, i * 0.1)
        np.testing.assert_array_equal(got.logits, expected.logits)
    assert dirty.frames_kept == clean.frames_kept == 5


def test_a_failing_clip_leaves_the_window_and_its_stride_untouched():
    frames = _frames(9, seed=13)
    card = fake_card(online=False, crop=16, clip_len=4)
    clean = WindowSession(FakeClipEngine(card), stride=2, sample=False)
    dirty = WindowSession(FakeClipEngine(card, fail_on_call=1), stride=2, sample=False)
    for i, f in enumerate(frames):
        expected = clean.push(f, i * 0.1, frame_index=i)
        if i == 5:  # the second clip (frames 2..5) fails once
            with pytest.raises(BackendError, match="injected"):
                dirty.push(f, i * 0.1, frame_index=i)
        got = dirty.push(f, i * 0.1, frame_index=i)
        assert (got is None) == (expected is None)
        if got is not None:
            assert got.frame_range == expected.frame_range
            np.testing.assert_array_equal(got.logits, expected.logits)


class _ForgetfulEngine(FakeOnlineEngine):
    """Loses the stream's state at the given steps, as a restarted Triton server does: a step with a
    carried state raises StateLost; a fresh state (init_state) is always taken."""

    def __init__(self, lose_at: set[int], **kw):
        super().__init__(**kw)
        self.lose_at, self.seen = set(lose_at), 0

    def init_state(self, batch_size: int = 1):
        return ("fresh", super().init_state(batch_size))

    def step(self, frame, state):
        from streamtsm.backends.base import StateLost

        kind, inner = state
        self.seen += 1
        if kind == "carried" and self.seen in self.lose_at:
            raise StateLost(f"server lost sequence 7 at call {self.seen}")
        logits, new = super().step(frame, inner)
        return logits, ("carried", new)


def test_a_lost_state_starts_the_stream_again_from_that_frame():
    """The engine lost the state (a Triton server restarted): the session resends the frame with a
    fresh state and reports RECONNECT, so a plain Recognizer over it survives; every output equals
    a session reset by hand at the same frame."""
    from streamtsm import Recognizer
    from streamtsm.sampling import Reset

    card = fake_card(fps=15.0)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(12)]
    remote = Recognizer(_ForgetfulEngine({6}, card=card), smoothing=3)
    local = Recognizer(FakeOnlineEngine(card), smoothing=3)
    for k, frame in enumerate(frames):
        if k == 5:  # the 6th step meets the lost state
            local.restart(Reset(ResetReason.RECONNECT, "by hand"))
        got, want = remote.push(frame, k / 15), local.push(frame, k / 15)
        assert (got.reset is None) == (want.reset is None) and got.frame_index == want.frame_index == k
        np.testing.assert_allclose(got.probabilities, want.probabilities, rtol=1e-6, atol=1e-7)
    assert remote.reset_counts[ResetReason.RECONNECT] == 1
    assert remote.postprocessor.smoother.steps_seen == local.postprocessor.smoother.steps_seen == 7


def test_a_state_lost_again_with_a_fresh_state_is_an_error_that_changes_nothing():
    from streamtsm.backends.base import StateLost

    class Refusing(_ForgetfulEngine):
        def step(self, frame, state):
            if self.seen >= 2:
                raise StateLost("the server refuses every sequence")
            return super().step(frame, state)

    session = StreamingSession(Refusing(set()), fps=None)
    frame = np.zeros((48, 64, 3), np.uint8)
    assert session.push(frame, 0.0) is not None and session.push(frame, 0.1) is not None
    with pytest.raises(StateLost, match="refuses every sequence"):
        session.push(frame, 0.2)
    assert session.frames_kept == 2
