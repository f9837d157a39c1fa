"""The deployment path runs without torch: an exported model driven by a Recognizer in a
subprocess where ``import torch`` fails gives the same predictions as the torch backend.

The video is written to disk with OpenCV and decoded by both sides, so the comparison covers
decoding, preprocessing, the ONNX Runtime backend, the session and postprocessing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FPS = 30.0


def _write_video(path: Path, frames: int = 24, size: tuple[int, int] = (160, 120)) -> Path:
    """A moving, colour-changing square on a gradient: enough change for the state to matter."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    ys, xs = np.mgrid[0:h, 0:w]
    for t in range(frames):
        img = np.stack([(xs * 255 // w), (ys * 255 // h), np.full_like(xs, 40)], axis=-1).astype(np.uint8)
        x0 = 10 + 5 * t
        img[40:80, x0 : x0 + 30] = (255 - 8 * t, 30 + 9 * t, 200)
        writer.write(img)
    writer.release()
    return path


# Runs in the subprocess: torch is made unimportable before anything else is imported.
_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import cv2
    import streamtsm
    model, video = sys.argv[1], sys.argv[2]
    rec = streamtsm.Recognizer(model)
    cap = cv2.VideoCapture(video)
    out, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        pred = rec.push(frame, timestamp=i / 30.0)
        if pred is not None:
            out.append({"label": pred.label, "probabilities": pred.probabilities.tolist()})
        i += 1
    loaded = sorted(m for m in sys.modules if (m == "torch" or m.startswith("torch.")) and sys.modules[m] is not None)
    print(json.dumps({"backend": rec.engine.name, "predictions": out, "torch_modules": loaded}))
    """
)


def _reference_predictions(model, video: Path) -> list[dict]:
    from streamtsm import Recognizer

    rec = Recognizer(model, backend="torch")
    cap = cv2.VideoCapture(str(video))
    out, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        pred = rec.push(frame, timestamp=i / FPS)
        if pred is not None:
            out.append({"label": pred.label, "probabilities": pred.probabilities})
        i += 1
    return out


def _spread_weights(model, seed: int = 0):
    """Weights at a scale that gives O(1) logits (fresh classifiers give ~1e-3, all classes tied)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var") or (t.dim() == 1 and name.endswith("weight")):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / max(1, t[0].numel())) ** 0.5)
    return model.eval()


def test_exported_model_runs_without_torch(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from streamtsm.export.onnx import export_onnx
    from streamtsm.models import create_model

    model = create_model("tsm_mobilenetv2", num_classes=5, width_mult=0.5,
                         class_names=["wave", "swipe_left", "swipe_right", "push", "nothing"])
    pre = dataclasses.replace(model.card.preprocessing, crop_size=96, resize_short=110)
    model.card = model.card.replace(preprocessing=pre)
    _spread_weights(model)
    onnx_path = export_onnx(model, tmp_path / "gestures.onnx", check_steps=2)
    video = _write_video(tmp_path / "clip.avi")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(onnx_path), str(video)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    assert child["torch_modules"] == []
    assert child["backend"].startswith("onnxruntime")

    reference = _reference_predictions(model, video)
    assert len(reference) == len(child["predictions"]) >= 20
    assert [p["label"] for p in child["predictions"]] == [p["label"] for p in reference]
    got = np.array([p["probabilities"] for p in child["predictions"]], dtype=np.float32)
    ref = np.stack([p["probabilities"] for p in reference])
    assert float(np.abs(got - ref).max()) < 1e-4
    assert len({p["label"] for p in reference}) > 1 or float(np.ptp(ref[:, 0])) > 1e-3, "predictions never change"


def test_runtime_modules_import_without_torch():
    """Every runtime-path module (and the ONNX Runtime / TensorRT backends) imports with torch blocked."""
    code = textwrap.dedent(
        """
        import sys, importlib
        sys.modules["torch"] = None
        for name in ("streamtsm", "streamtsm.card", "streamtsm.preprocess", "streamtsm.postprocess",
                     "streamtsm.capture", "streamtsm.session", "streamtsm.recognizer",
                     "streamtsm.backends", "streamtsm.backends.onnxruntime_backend",
                     "streamtsm.backends.tensorrt_backend", "streamtsm.backends.tensorrt_engine", "streamtsm.export.triton"):
            importlib.import_module(name)
        from streamtsm.resolve import open_engine; from streamtsm.backends import BackendError
        try:
            open_engine("tsm_mobilenetv2")
        except BackendError as exc:
            assert "needs torch" in str(exc), exc
        else:
            raise SystemExit("a registry name must not run without torch")
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
