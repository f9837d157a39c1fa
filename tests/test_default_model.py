"""The embedded default model through the real Recognizer: scripted gestures are recognised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import streamtsm
from streamtsm.bench.detection import score_events
from streamtsm.sources import SyntheticSource
from streamtsm.recognizer import Recognizer

DEFAULT_MODEL = Path(streamtsm.__file__).parent / "assets" / "default.safetensors"

# ------------------------------------------------------------------- scripted gesture test

MATCH_WINDOW_AFTER_END_S = 0.5


def test_score_events_matches_labels_within_the_window():
    from streamtsm.postprocess import ActionEvent
    from streamtsm.synthetic import GestureEvent

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
    from streamtsm.synthetic import GestureScript

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


