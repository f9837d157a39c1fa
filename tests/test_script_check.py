"""The default model's live-script check runs through the real Recognizer and its timestamp sampler.

The full check (two 120 s scripts: 100 of 100 gestures, 0.984 of the steps after each gesture
right, every idle step ``no_motion``) is ``python -m streamtsm.train.default_model check``;
here one shorter script of the same held-out kind.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")  # the check lives in streamtsm.train (the torch side), even when the model runs on ONNX Runtime

from fakes import FakeOnlineEngine, fake_card  # noqa: E402
from streamtsm.recognizer import Recognizer  # noqa: E402
from streamtsm.train.default_model import Recipe, script_check  # noqa: E402


def test_default_model_passes_the_script_check_through_the_recognizer():
    pytest.importorskip("onnxruntime")
    result = script_check(None, Recipe(), seeds=[31], seconds=30.0)
    assert result["engine"].startswith("onnxruntime")  # the embedded default.onnx, no torch model in the loop
    # 30 s at 30 fps sampled by timestamp to the card's 10 fps: one step per 100 ms of stream time
    assert result["steps"] == 300
    assert result["gestures"] >= 10
    assert result["gesture_accuracy"] >= 0.9, result["events"]
    assert result["idle_no_motion_rate"] >= 0.95


def test_script_check_refuses_a_model_of_other_classes():
    engine = FakeOnlineEngine(fake_card())
    with pytest.raises(ValueError, match="synthetic gestures"):
        script_check(engine, Recipe(), seeds=[31], seconds=5.0)


def test_the_check_uses_the_recognizers_sampling_and_smoothing(monkeypatch):
    """Every prediction the check scores comes from Recognizer.run, with the recipe's smoothing."""
    seen: list[tuple[int, float]] = []
    real_run = Recognizer.run

    def spy(self, source, **kwargs):
        for p in real_run(self, source, **kwargs):
            seen.append((self.postprocessor.config.smoothing_window, p.timestamp))
            yield p

    monkeypatch.setattr(Recognizer, "run", spy)
    pytest.importorskip("onnxruntime")
    result = script_check(None, Recipe(), seeds=[32], seconds=4.0)
    assert len(seen) == result["steps"] == 40
    assert {w for w, _ in seen} == {Recipe().smoothing_steps}
    assert [round(t, 6) for _, t in seen[:3]] == [0.0, 0.1, 0.2]  # kept on the 10 fps grid of the stream's clock


def test_an_open_engine_runs_instead_of_the_model_and_stays_open():
    """``engine=`` (e.g. an int8 export) goes through the same Recognizer; the caller keeps its engine."""
    pytest.importorskip("onnxruntime")
    from streamtsm.resolve import open_engine

    engine = open_engine("default", "onnxruntime")
    try:
        result = script_check(None, Recipe(), seeds=[31], seconds=3.0, engine=engine)
        assert result["engine"] == engine.name and result["steps"] == 30
        engine.step(np.zeros((1, 3, 80, 80), np.float32), engine.init_state(1))  # still open
    finally:
        engine.close()
