"""Softmax, smoothing, hysteresis events and the combined post-processor."""

from __future__ import annotations

import numpy as np
import pytest

from streamtsm.card import ModelCard
from streamtsm.postprocess import (
    ActionEvent,
    EventDetector,
    PostprocessConfig,
    PostProcessor,
    TemporalSmoother,
    softmax,
)

pytestmark = pytest.mark.runtime  # torch-free: also run with torch blocked

NAMES = ("nothing", "wave", "clap", "swipe")


def probs_for(label: str | None, p: float, names: tuple[str, ...] = NAMES) -> np.ndarray:
    """A probability vector with ``p`` on ``label`` and the rest spread over the other classes."""
    out = np.full(len(names), (1 - p) / (len(names) - 1))
    out[names.index(label)] = p
    return out


def test_softmax_stable_and_normalised() -> None:
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    y = softmax(x)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=-1), 1.0)
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(y[0], e / e.sum())
    np.testing.assert_allclose(softmax(x.T, axis=0), y.T)
    assert softmax(np.array([1, 2, 3])).dtype == np.float64
    assert softmax(np.array([1, 2, 3], np.float32)).dtype == np.float32


def test_smoother_prob_mode_is_mean_of_last_window_probabilities() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (10, 5))
    sm = TemporalSmoother(window=3, mode="prob")
    for t in range(10):
        out = sm.update(logits[t])
        lo = max(0, t - 2)
        np.testing.assert_allclose(out, softmax(logits[lo : t + 1]).mean(axis=0), atol=1e-12)
    sm.reset()
    np.testing.assert_allclose(sm.update(logits[0]), softmax(logits[0]))


def test_smoother_logit_mode_is_softmax_of_mean_logits() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (6, 4))
    sm = TemporalSmoother(window=4, mode="logit")
    for t in range(6):
        out = sm.update(logits[t][None])  # (1, C) is accepted too
        np.testing.assert_allclose(out, softmax(logits[max(0, t - 3) : t + 1].mean(axis=0)), atol=1e-12)


def test_smoother_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        TemporalSmoother(0)
    with pytest.raises(ValueError, match="mode"):
        TemporalSmoother(2, "median")
    sm = TemporalSmoother(2)
    sm.update(np.zeros(4))
    with pytest.raises(ValueError, match="expected 4"):
        sm.update(np.zeros(5))


def test_scripted_sequence_gives_start_end_events_with_timestamps() -> None:
    det = EventDetector(NAMES, background=("nothing",), start_threshold=0.6, end_threshold=0.4)
    script = (
        [("nothing", 0.9)] * 3  # t = 0.0 .. 0.2: background, no event
        + [("wave", 0.5), ("wave", 0.7), ("wave", 0.8), ("wave", 0.5), ("wave", 0.45)]  # start at t=0.4
        + [("wave", 0.3)]  # t=0.8: ends (below 0.4)
        + [("clap", 0.65)] * 2  # t=0.9: clap starts
        + [("swipe", 0.7)]  # t=1.1: swipe starts while clap active -> end clap, then start swipe
    )
    events: list[ActionEvent] = []
    for i, (label, p) in enumerate(script):
        events += det.update(probs_for(label, p), timestamp=i * 0.1, frame_index=100 + i)
    summary = [(e.kind, e.label, round(e.timestamp, 3), e.frame_index) for e in events]
    assert summary == [
        ("start", "wave", 0.4, 104),
        ("end", "wave", 0.8, 108),
        ("start", "clap", 0.9, 109),
        ("end", "clap", 1.1, 111),
        ("start", "swipe", 1.1, 111),
    ]
    assert events[0].confidence == pytest.approx(0.7)
    assert events[1].confidence == pytest.approx(0.8)  # peak over the action
    assert events[1].duration_s == pytest.approx(0.4)
    assert events[1].class_index == NAMES.index("wave")
    assert det.current == "swipe"


def test_hysteresis_does_not_flicker_on_noisy_probabilities() -> None:
    """Probability wandering around one threshold: hysteresis yields one start/end pair."""
    rng = np.random.default_rng(7)
    det = EventDetector(NAMES, background=("nothing",), start_threshold=0.6, end_threshold=0.4)
    # ramps up to ~0.6 with +-0.08 noise for 200 steps, then down to 0.1
    level = np.concatenate([np.full(200, 0.6), np.full(50, 0.1)])
    noisy = np.clip(level + rng.uniform(-0.08, 0.08, level.shape), 0, 1)
    crossings = int(np.sum(np.diff((noisy[:200] > 0.6).astype(int)) != 0))
    assert crossings > 20  # the input really does flicker around the start threshold
    events = []
    for i, p in enumerate(noisy):
        events += det.update(probs_for("wave", p), i / 30, i)
    assert [(e.kind, e.label) for e in events] == [("start", "wave"), ("end", "wave")]
    assert events[1].frame_index >= 200


def test_consecutive_steps_and_min_duration() -> None:
    det = EventDetector(NAMES, background=("nothing",), start_steps=3, min_duration_s=0.5)
    seq = [0.7, 0.7, 0.2, 0.7, 0.7, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    events = []
    for i, p in enumerate(seq):
        events += det.update(probs_for("clap", p), i * 0.1, i)
    starts = [e for e in events if e.kind == "start"]
    ends = [e for e in events if e.kind == "end"]
    assert [e.frame_index for e in starts] == [5]  # third consecutive step above threshold
    # held for 0.5 s after the start at t=0.5 even though the probability fell at t=0.6
    assert [e.frame_index for e in ends] == [10]


def test_background_never_starts_an_event() -> None:
    det = EventDetector(NAMES, background=("nothing",))
    events = []
    for i in range(50):
        events += det.update(probs_for("nothing", 0.99), i * 0.1, i)
    assert events == [] and det.current is None
    # background taken from a card, at a non-zero index: still no event, no magic index 0
    card = ModelCard(arch="x", arch_kwargs={"num_classes": 3}, class_names=("wave", "idle", "clap"), background_classes=("idle",))
    post = PostProcessor.from_card(card, smoothing_window=1)
    for i in range(20):
        out = post.step(np.array([0.0, 10.0, 0.0]), i * 0.1, i)
        assert out.events == ()
    assert post.step(np.array([10.0, 0.0, 0.0]), 2.0, 20).events[0].label == "wave"


def test_reset_emits_end_of_active_action() -> None:
    det = EventDetector(NAMES, background=("nothing",))
    det.update(probs_for("wave", 0.9), 1.0, 30)
    assert det.current == "wave"
    (end,) = det.reset()
    assert (end.kind, end.label, end.timestamp, end.frame_index) == ("end", "wave", 1.0, 30)
    assert det.current is None and det.reset() == []
    det.update(probs_for("clap", 0.9), 2.0, 60)
    (end,) = det.reset(timestamp=2.5, frame_index=75)
    assert (end.timestamp, end.frame_index, end.duration_s) == (2.5, 75, 0.5)


def test_detector_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        EventDetector(NAMES, start_threshold=0.3, end_threshold=0.5)
    with pytest.raises(ValueError, match="not among"):
        EventDetector(NAMES, background=("idle",))
    with pytest.raises(ValueError, match="every class"):
        EventDetector(("a", "b"), background=("a", "b"))
    with pytest.raises(ValueError, match="expected 4"):
        EventDetector(NAMES).update(np.ones(3) / 3, 0.0, 0)


def test_postprocessor_topk_smoothing_and_events() -> None:
    card = ModelCard(arch="x", arch_kwargs={"num_classes": 4}, class_names=NAMES, background_classes=("nothing",))
    post = PostProcessor.from_card(card, PostprocessConfig(smoothing_window=2, top_k=3, start_threshold=0.6))
    assert post.config.smoothing_window == 2
    logits_a = np.log(probs_for("wave", 0.9))
    logits_b = np.log(probs_for("clap", 0.9))
    out = post.step(logits_a, 0.0, 0)
    assert out.top_labels[0] == "wave" and len(out.top_indices) == 3
    assert [e.kind for e in out.events] == ["start"] and out.current == "wave"
    assert out.top_scores == tuple(sorted(out.top_scores, reverse=True))
    out = post.step(logits_b[None], 0.1, 1)  # (1, C) as a backend returns it
    np.testing.assert_allclose(out.probs, (probs_for("wave", 0.9) + probs_for("clap", 0.9)) / 2, atol=1e-6)
    assert out.events == ()  # 0.45 each: wave stays active (above end threshold), clap below start
    out = post.step(logits_b, 0.2, 2)
    assert [(e.kind, e.label) for e in out.events] == [("end", "wave"), ("start", "clap")]
    assert [e.kind for e in post.reset()] == ["end"]
    with pytest.raises(ValueError, match="expected 4"):
        post.step(np.zeros(5), 0.3, 3)


@pytest.mark.parametrize("num_classes", [5, 3000])  # one stable sort / partition first (> 2048 classes)
def test_top_k_orders_by_score_and_breaks_ties_by_class_index(num_classes: int) -> None:
    names = tuple(f"c{i}" for i in range(num_classes))
    logits = np.zeros(num_classes)
    logits[[4, 2, 3]] = [5.0, 5.0, 3.0]  # c2 and c4 tie for first
    post = PostProcessor(names, config=PostprocessConfig(smoothing_window=1, top_k=3))
    out = post.step(logits.astype(np.float32), 0.0, 0)
    assert out.top_indices == (2, 4, 3) and out.top_labels == ("c2", "c4", "c3")
    expected = softmax(logits)
    np.testing.assert_allclose(out.top_scores, expected[[2, 4, 3]], rtol=1e-12)
    np.testing.assert_allclose(out.probs, expected, rtol=1e-6)
    assert all(type(i) is int for i in out.top_indices) and all(type(s) is float for s in out.top_scores)


def test_smoother_does_not_modify_its_input_and_matches_numpy_mean() -> None:
    rng = np.random.default_rng(5)
    for mode in ("prob", "logit"):
        sm = TemporalSmoother(3, mode)
        seen = []
        for _ in range(5):
            x = rng.normal(size=6)  # float64 (C,): taken without a copy
            before = x.copy()
            got = sm.update(x)
            np.testing.assert_array_equal(x, before)
            seen.append(softmax(x) if mode == "prob" else x)
            mean = np.mean(seen[-3:], axis=0)
            np.testing.assert_allclose(got, mean if mode == "prob" else softmax(mean), rtol=1e-12)
