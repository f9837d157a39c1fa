"""Recognizer: push/run API, events and callbacks, bad frames, threads, and the scripted-gesture test."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

torch = pytest.importorskip("torch")

from streamtsm.bench.detection import score_events  # noqa: E402
from streamtsm.card import Preprocessing, Temporal  # noqa: E402
from streamtsm.checkpoints.loader import DEFAULT_MODEL  # noqa: E402
from streamtsm.models import create_model  # noqa: E402
from streamtsm.preprocess import FrameError  # noqa: E402
from streamtsm.recognizer import Prediction, Recognizer, RecognizerError  # noqa: E402
from streamtsm.sampling import ResetReason  # noqa: E402
from streamtsm.capture import SyntheticSource  # noqa: E402
from streamtsm.train.synthetic import CLASSES  # noqa: E402


def _model(seed: int = 0, constant_class: str | None = None):
    """A small real online TSM with the synthetic class names (64 px, 10 fps card).

    ``constant_class``: zero classifier weights and a large bias on that class, so the model
    predicts it whatever it sees (to drive the event logic deterministically).
    """
    torch.manual_seed(seed)
    model = create_model("tsm_mobilenetv2", num_classes=len(CLASSES), width_mult=0.5, class_names=CLASSES)
    head = dict(model.named_parameters())
    weight = next(p for name, p in head.items() if name.endswith("classifier.weight"))
    bias = next(p for name, p in head.items() if name.endswith("classifier.bias"))
    with torch.no_grad():
        if constant_class:
            weight.zero_()
            bias.zero_()
            bias[CLASSES.index(constant_class)] = 10.0
        else:  # a wide random head, so that predictions clearly depend on the frames
            weight.normal_(0, 1)
    model.card = model.card.replace(
        preprocessing=Preprocessing(crop_size=64, resize_short=64),
        temporal=Temporal(mode="online", fps=10.0, max_gap_s=1.0),
        background_classes=("no_motion",),
    )
    return model


@pytest.fixture(scope="module")
def model():
    """One open backend shared by the tests (a Recognizer given a Backend does not close it)."""
    from streamtsm.resolve import open_engine

    return open_engine(_model(), "torch")


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
    preds = list(rec.run(source, max_frames=60))
    assert [p.frame_index for p in preds] == list(range(0, 60, 3))
    assert [p.timestamp for p in preds] == pytest.approx([i / 10.0 for i in range(20)])
    assert all(p.timings.end_to_end_ms >= p.timings.inference_ms for p in preds)
    stats = rec.capture_stats
    assert stats.delivered == 60 and stats.dropped == 0 and not stats.running


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
    t0 = time.monotonic()
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
    from streamtsm.capture import SourceError

    rec = Recognizer(model)
    with pytest.raises(SourceError, match="does not exist"):
        next(rec.run("/nonexistent/video.mp4"))
    with pytest.raises(RecognizerError, match="max_frames"):
        next(rec.run("synthetic", max_frames=-1))


# ------------------------------------------------------------------- scripted gesture test

MATCH_WINDOW_AFTER_END_S = 0.5


def test_score_events_matches_labels_within_the_window():
    from streamtsm.postprocess import ActionEvent
    from streamtsm.train.synthetic import GestureEvent

    timeline = [GestureEvent("swipe_up", 1.0, 2.0), GestureEvent("zoom_in", 4.0, 5.0), GestureEvent("rotate_cw", 7.0, 8.0)]
    events = [
        ActionEvent("start", "swipe_up", 2, 1.8, 18, 0.9),
        ActionEvent("end", "swipe_up", 2, 2.3, 23, 0.9),
        ActionEvent("start", "zoom_out", 5, 4.2, 42, 0.9),  # wrong label
        ActionEvent("start", "zoom_in", 4, 5.7, 57, 0.9),  # right label, too late (> end + 0.5 s)
        ActionEvent("start", "rotate_cw", 6, 8.4, 84, 0.9),
    ]
    score = score_events(timeline, events, window_after_end_s=MATCH_WINDOW_AFTER_END_S)
    assert [m.delay_s for m in score.matches] == [pytest.approx(-0.2), None, pytest.approx(0.4)]
    assert score.false_starts == 2 and score.detected_fraction == pytest.approx(2 / 3)
    assert score.delay_percentile(50) == pytest.approx(0.1)
    # the compute time of the step that emitted an event is part of the delay
    late = score_events(timeline, events, window_after_end_s=0.5, compute_s={84: 0.05})
    assert late.matches[2].delay_s == pytest.approx(0.45) and late.matches[0].delay_s == pytest.approx(-0.2)
    # a wider window catches the late zoom_in
    assert score_events(timeline, events, window_after_end_s=1.0).matches[1].delay_s == pytest.approx(0.7)


SCRIPT_SEED, SCRIPT_SECONDS = 2026, 120.0


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the trained default model {DEFAULT_MODEL} is not in this checkout yet")
def test_default_model_recognises_the_scripted_gestures():
    from streamtsm.train.synthetic import GestureScript

    events = []
    rec = Recognizer(on_event=events.append)  # the embedded default model, its card's settings
    source = SyntheticSource(seed=SCRIPT_SEED, duration_s=SCRIPT_SECONDS, realtime=False)  # held-out split, own clock
    timeline = GestureScript(SCRIPT_SEED, duration_s=SCRIPT_SECONDS, size=source.size, fps=source.fps).timeline
    latencies = [p.timings.inference_ms for p in rec.run(source)]
    score = score_events(timeline, events, window_after_end_s=MATCH_WINDOW_AFTER_END_S)
    delays, false_starts = [m.delay_s for m in score.matches], score.false_starts
    hits = [d for d in delays if d is not None]
    rate = score.detected_fraction
    print(
        f"\nscripted gestures: {len(timeline)}, matched {len(hits)} ({rate:.1%}), false starts {false_starts}, "
        f"delay after gesture end: median {np.median(hits):.2f} s, max {max(hits):.2f} s; "
        f"inference p50 {np.percentile(latencies, 50):.1f} ms p99 {np.percentile(latencies, 99):.1f} ms"
    )
    assert len(timeline) >= 40
    assert rate >= 0.9, f"only {rate:.1%} of scripted gestures recognised; delays {delays}"
    assert max(hits) <= MATCH_WINDOW_AFTER_END_S


def test_window_model_predictions_carry_the_frame_range():
    import dataclasses

    from streamtsm.resolve import open_engine

    torch.manual_seed(0)
    clip_model = create_model("r3d_18", num_classes=3, class_names=("a", "b", "idle"))
    clip_model.card = clip_model.card.replace(
        preprocessing=dataclasses.replace(clip_model.card.preprocessing, resize_hw=(36, 48), crop_size=32),
        temporal=dataclasses.replace(clip_model.card.temporal, clip_len=4, fps=10.0),
        background_classes=("idle",),
    )
    backend = open_engine(clip_model, "torch")
    with pytest.raises(RecognizerError, match="backend options"):
        Recognizer(backend, threads=1)
    rec = Recognizer(backend, stride=2, top_k=2)
    preds = [p for i, f in enumerate(_frames(30)) if (p := rec.push(f, i / 30.0)) is not None]
    # kept frames 0, 3, 6, ...; window of 4 kept frames, a prediction every 2 kept frames
    assert [p.frame_range for p in preds] == [(0, 9), (6, 15), (12, 21), (18, 27)]
    assert all(p.frame_index == p.frame_range[1] and len(p.top_k) == 2 for p in preds)
