"""benchmarks/int8.py: the latency run end to end on tiny settings, and the accuracy part's online
clip readout (an exported graph stepped over each clip must give the torch per-frame logits)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]


def _script():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_script_int8", ROOT / "benchmarks" / "int8.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_latency_run_writes_figures_for_tsm_and_backbone(tmp_path):
    out = tmp_path / "results"
    argv = ["latency", "--models", "default", "--rounds", "3", "--warmup", "1", "--calib-frames", "8",
            "--check-frames", "4", "--no-progress", "--out", str(out)]
    assert _script().main(argv) == 0
    payload = json.loads((out / "int8_latency.json").read_text())
    assert set(payload["timings"]) == {f"default {k} {p}" for k in ("TSM", "backbone") for p in ("fp32", "int8")}
    for t in payload["timings"].values():
        assert t["n"] == 3 * 8 and 0 < t["median_ms"] <= t["p99_ms"]
    r = payload["ratios"]["default"]
    assert r["tsm_over_backbone_ratio"] == pytest.approx(
        payload["ratios"]["default TSM"]["median"] / payload["ratios"]["default backbone"]["median"])
    assert "load_avg_1min_before" in payload["environment"] and "DIR" in payload["command"]
    assert (out / "int8_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "| default |" in (out / "int8_latency.md").read_text()


def test_online_clip_logits_equal_torch_frame_logits(tmp_path):
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime
    from streamtsm.checkpoints import load_model
    from streamtsm.export.onnx import export_onnx
    from streamtsm.train.augment import EvalTransform
    from streamtsm.train.default_model import ClipArray
    from streamtsm.train.evaluate import frame_logits
    from streamtsm.train.loop import AugmentedClips

    model = load_model(None)
    rng = np.random.default_rng(0)
    clips = ClipArray(rng.integers(0, 256, (3, 5, 80, 80, 3), dtype=np.uint8), np.array([0, 4, 8]))
    data = AugmentedClips(clips, EvalTransform(model.card.preprocessing))
    engine = open_onnxruntime(export_onnx(model, tmp_path / "m.onnx", check_steps=1), threads=1)
    stepped, labels = _script().online_clip_logits(engine, data)
    reference, ref_labels = frame_logits(model, data)
    assert stepped.shape == reference.shape == (3, 5, 9) and labels.tolist() == ref_labels.tolist() == [0, 4, 8]
    np.testing.assert_allclose(stepped, reference, atol=1e-4 * max(1.0, float(np.abs(reference).max())))
