"""The Recognizer's logic: sampling, events once, typed resets, threads, runs, bad frames.

Runtime logic, so the engines are the numpy fakes of tests/fakes.py (no torch); the real
models' behaviour through the Recognizer is in test_default_model.py and test_export_onnx.py.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fakes import FakeClipEngine, FakeOnlineEngine, fake_card
from streamtsm.sources import SyntheticSource
from streamtsm.preprocess import FrameError
from streamtsm.recognizer import Prediction, Recognizer, RecognizerError
from streamtsm.sampling import ResetReason

pytestmark = pytest.mark.runtime

CLASSES = ("swipe_left", "swipe_up", "zoom_in", "no_motion")


def _model(seed: int = 0, constant_class: str | None = None) -> FakeOnlineEngine:
    """A fake online engine with a 10 fps card and a background class.

    ``constant_class``: a large bias on that class, so it wins whatever the frames (to drive
    the event logic deterministically).
    """
    card = fake_card(classes=CLASSES, fps=10.0, max_gap_s=1.0, background=("no_motion",))
    return FakeOnlineEngine(card, seed=seed, bias={constant_class: 1000.0} if constant_class else None)


@pytest.fixture(scope="module")
def model():
    """One engine shared by the tests (a Recognizer given an engine does not close it)."""
    return _model()


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def test_push_returns_predictions_at_the_model_rate(model):
    rec = Recognizer(model, top_k=3)
    preds = [rec.push(f, i / 30.0) for i, f in enumerate(_frames(30))]
    got = [p for p in preds if p is not None]
    assert [p.frame_index for p in got] == list(range(0, 30, 3))
    p = got[-1]
    assert isinstance(p, Prediction) and p.frame_range is None
    assert len(p.top_k) == 3 and p.top_k[0] == (p.label, p.score)
    assert [s for _, s in p.top_k] == sorted((s for _, s in p.top_k), reverse=True)
    assert p.probabilities.shape == (len(CLASSES),) and p.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert p.score == pytest.approx(float(p.probabilities.max()))
    t = p.timings
    assert t.preprocess_ms > 0 and t.inference_ms > 0 and t.postprocess_ms > 0
    assert t.end_to_end_ms >= t.preprocess_ms + t.inference_ms + t.postprocess_ms
    json.dumps(p.to_dict())  # JSON-ready
    assert rec.effective_fps == pytest.approx(10.0, rel=0.05)


def test_end_to_end_is_measured_from_capture(model):
    rec = Recognizer(model)
    captured = time.monotonic() - 0.2  # the frame waited 200 ms somewhere before push
    p = rec.push(_frames(1)[0], 0.0, captured_at=captured)
    assert p.timings.end_to_end_ms >= 200.0


def test_events_callbacks_and_reset():
    events = []
    rec = Recognizer(_model(constant_class="swipe_up"), on_event=events.append)
    first = rec.push(_frames(1)[0], 0.0)
    assert [(e.kind, e.label) for e in first.events] == [("start", "swipe_up")]
    assert first.current == "swipe_up" and rec.current == "swipe_up"
    assert [(e.kind, e.label) for e in events] == [("start", "swipe_up")]
    ended = rec.reset()
    assert [(e.kind, e.label) for e in ended] == [("end", "swipe_up")] and events[-1] == ended[0]
    nxt = rec.push(_frames(1)[0], 0.1)
    assert [e.kind for e in nxt.events] == ["start"]  # the reset's end was in what reset() returned, once
    assert nxt.reset is not None and nxt.reset.reason is ResetReason.CALLER
    assert len(events) == 3


def test_a_time_gap_ends_the_action_and_resets(model):
    events = []
    rec = Recognizer(_model(constant_class="zoom_in"), on_event=events.append)
    rec.push(_frames(1)[0], 0.0)
    after = rec.push(_frames(1)[0], 5.0)
    assert [(e.kind, e.label) for e in after.events] == [("end", "zoom_in"), ("start", "zoom_in")]
    assert after.events[0].timestamp == 0.0  # ended at the last step seen before the gap
    assert after.reset is not None and after.reset.reason is ResetReason.GAP and "gap" in after.reset.message
    assert rec.reset_counts[ResetReason.GAP] == 1
    assert [e.kind for e in events] == ["start", "end", "start"]


def test_background_classes_never_start_events():
    rec = Recognizer(_model(constant_class="no_motion"))
    preds = [rec.push(f, i / 10.0) for i, f in enumerate(_frames(5))]
    assert preds[-1].label == "no_motion" and preds[-1].current is None
    assert not any(p.events for p in preds)


def test_a_failing_callback_does_not_stop_the_stream():
    def boom(event):
        raise RuntimeError("user bug")

    rec = Recognizer(_model(constant_class="swipe_left"), on_event=boom)
    assert rec.push(_frames(1)[0], 0.0).current == "swipe_left"
    assert rec.push(_frames(1)[0], 0.1) is not None


_CLEAN: dict[int, list[Prediction]] = {}


def _clean_run(backend, frames):
    if id(backend) not in _CLEAN:
        rec = Recognizer(backend)
        _CLEAN[id(backend)] = [rec.push(f, i * 0.1) for i, f in enumerate(frames)]
    return _CLEAN[id(backend)]


_bad_or_odd_frames = st.one_of(
    st.none(),
    st.just(np.zeros((0, 0, 3), np.uint8)),
    st.just(np.zeros((1, 1, 3), np.uint8)),
    st.just(np.full((32, 32, 3), np.nan, np.float32)),
    st.just(np.zeros((32, 32, 3), np.int64) - 1),
    st.just(np.zeros((32, 32, 2), np.uint8)),
    st.just("not an image"),
    hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_]),
        shape=st.tuples(st.integers(1, 40), st.integers(1, 40)) | st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 5)),
    ),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=_bad_or_odd_frames)
def test_bad_frames_are_rejected_or_converted_without_corrupting_state(model, bad):
    good = _frames(3, seed=9)
    probed = Recognizer(model)  # frames pushed at the card's 10 fps
    expected = _clean_run(model, good)
    probed.push(good[0], 0.0)
    probed.push(good[1], 0.1)
    try:
        probed.push(bad, 0.15)
        converted = True
    except FrameError as exc:
        converted = False
        assert str(exc)  # says what was wrong
    last = probed.push(good[2], 0.2)
    if converted:  # an accepted odd frame is a real frame: it is skipped by sampling (0.15 s is between slots)
        assert probed.session.frames_kept == 3
    np.testing.assert_allclose(last.probabilities, expected[-1].probabilities, rtol=1e-5, atol=1e-6)


def test_run_over_a_file_speed_synthetic_source(model):
    rec = Recognizer(model)
    source = SyntheticSource(seed=1, duration_s=3.0, realtime=False)
    preds = list(rec.run(source, max_frames=20))  # run() counts the frames the model takes
    assert [p.frame_index for p in preds] == list(range(0, 60, 3))
    assert [p.timestamp for p in preds] == pytest.approx([i / 10.0 for i in range(20)])
    assert all(p.timings.end_to_end_ms >= p.timings.inference_ms for p in preds)
    stats = rec.capture_stats
    # the 38 frames between the kept ones were skipped on the capture thread, never handed over
    assert stats.delivered == 20 and stats.dropped == 0 and stats.skipped >= 38 and not stats.running
    assert stats.frames_read == stats.delivered + stats.dropped + stats.buffered + stats.skipped


def test_run_skips_frames_on_the_capture_thread_and_predicts_exactly_like_every_frame_pushed(model):
    # iter_frames() hands every frame to the session (which samples); run() lets the capture
    # thread drop the frames sampling would skip: same predictions, same timestamps, same resets
    every, skipping = Recognizer(model), Recognizer(model)
    seen = [(f.index, p) for f, p in every.iter_frames(SyntheticSource(seed=4, duration_s=4.0, fps=30, realtime=False))]
    expected = [p for _, p in seen if p is not None]
    got = list(skipping.run(SyntheticSource(seed=4, duration_s=4.0, fps=30, realtime=False)))
    assert len(seen) == 120 and len(got) == len(expected) == 40
    for a, b in zip(got, expected):
        assert (a.frame_index, a.timestamp, a.reset and a.reset.reason) == (b.frame_index, b.timestamp, b.reset and b.reset.reason)
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-6)
    assert skipping.capture_stats.skipped == 80 and every.capture_stats.skipped == 0
    assert skipping.input_fps == pytest.approx(30.0) and every.input_fps == pytest.approx(30.0)  # all captured frames
    assert skipping.effective_fps == pytest.approx(10.0)


def test_run_stops_within_a_second_on_stop_event(model):
    rec = Recognizer(model)
    stop = threading.Event()
    seen = []
    done = threading.Event()

    def consume():
        for p in rec.run("synthetic:2", stop_event=stop):  # real time, live-like
            seen.append(p)
        done.set()

    worker = threading.Thread(target=consume)
    worker.start()
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen, "no prediction from the live synthetic source"
    stop.set()
    assert done.wait(10.0), "run() did not end after stop_event was set"
    worker.join(1)
    assert not rec.capture_stats.running
    assert not [t for t in threading.enumerate() if t.name.startswith("capture[")]


def test_one_run_at_a_time(model):
    rec = Recognizer(model)
    gen = rec.run(SyntheticSource(seed=3, duration_s=2.0, realtime=False))
    next(gen)
    with pytest.raises(RecognizerError, match="one stream"):
        next(rec.run("synthetic"))
    gen.close()  # closing the generator stops its capture thread and frees the Recognizer
    assert next(rec.run(SyntheticSource(seed=3, duration_s=2.0, realtime=False))) is not None


def test_concurrent_pushes_are_serialised(model):
    rec = Recognizer(model)
    errors = []
    frames = _frames(4)

    def pusher():
        try:
            for i in range(10):
                rec.push(frames[i % 4])  # timestamp = now, from one clock
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=pusher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert rec.session.frames_seen == 40


def test_source_spec_errors_are_clear(model):
    from streamtsm.sources import SourceError

    rec = Recognizer(model)
    with pytest.raises(SourceError, match="does not exist"):
        next(rec.run("/nonexistent/video.mp4"))
    with pytest.raises(RecognizerError, match="max_frames"):
        next(rec.run("synthetic", max_frames=-1))


def test_window_model_predictions_carry_the_frame_range():
    backend = FakeClipEngine(fake_card(online=False, classes=("a", "b", "idle"), background=("idle",), clip_len=4, fps=10.0))
    with pytest.raises(RecognizerError, match="backend options"):
        Recognizer(backend, threads=1)
    rec = Recognizer(backend, stride=2, top_k=2)
    preds = [p for i, f in enumerate(_frames(30)) if (p := rec.push(f, i / 30.0)) is not None]
    # kept frames 0, 3, 6, ...; window of 4 kept frames, a prediction every 2 kept frames
    assert [p.frame_range for p in preds] == [(0, 9), (6, 15), (12, 21), (18, 27)]
    assert all(p.frame_index == p.frame_range[1] and len(p.top_k) == 2 for p in preds)


def test_run_prepares_kept_frames_on_the_capture_thread_with_the_same_result(model):
    pairs = list(Recognizer(model).iter_frames(SyntheticSource(seed=4, duration_s=2.0, realtime=False), max_frames=45))
    prepared = [f.prepared is not None for f, _ in pairs]
    kept = [p is not None for _, p in pairs]
    assert prepared == kept and sum(kept) == 15  # exactly the frames the model took were preprocessed ahead
    replay = Recognizer(model)
    for frame, pred in pairs:
        again = replay.push(frame.image, frame.media_time_s, frame_index=frame.index)  # prepared here instead
        assert (again is None) == (pred is None)
        if pred is not None:
            np.testing.assert_array_equal(again.probabilities, pred.probabilities)
