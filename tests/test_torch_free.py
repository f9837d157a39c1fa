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


# Runs in the subprocess before anything else: torch and the torch side of the package
# (models, checkpoints, export, train, backends.torch_backend) are made unimportable, then
# every runtime module is imported and an exported model runs end to end through the Recognizer.
_BLOCKER = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys
    TORCH_SIDE = ("torch", "streamtsm.models", "streamtsm.checkpoints", "streamtsm.export", "streamtsm.train",
                  "streamtsm.bench", "streamtsm.backends.torch_backend")

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in TORCH_SIDE):
                raise ImportError(f"{name} is blocked: the runtime must not import it")
            return None

    sys.meta_path.insert(0, Blocker())
    import streamtsm
    runtime = [m.name for m in pkgutil.walk_packages(streamtsm.__path__, "streamtsm.")
               if not any(m.name == b or m.name.startswith(b + ".") for b in TORCH_SIDE)]
    for name in runtime:
        importlib.import_module(name)
    """
)

_CHILD = _BLOCKER + textwrap.dedent(
    """
    import json, sys
    import cv2
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
    print(json.dumps({"backend": rec.engine.name, "predictions": out, "torch_modules": loaded, "imported": runtime}))
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
    assert "streamtsm.recognizer" in child["imported"] and "streamtsm.backends.onnxruntime_backend" in child["imported"]
    assert child["backend"].startswith("onnxruntime")

    reference = _reference_predictions(model, video)
    assert len(reference) == len(child["predictions"]) >= 20
    assert [p["label"] for p in child["predictions"]] == [p["label"] for p in reference]
    got = np.array([p["probabilities"] for p in child["predictions"]], dtype=np.float32)
    ref = np.stack([p["probabilities"] for p in reference])
    assert float(np.abs(got - ref).max()) < 1e-4
    assert len({p["label"] for p in reference}) > 1 or float(np.ptp(ref[:, 0])) > 1e-3, "predictions never change"


def test_runtime_modules_import_without_the_torch_side():
    """Every runtime module imports with torch and the torch-side packages blocked; names that need torch say so."""
    code = _BLOCKER + textwrap.dedent(
        """
        assert "streamtsm.recognizer" in runtime and "streamtsm.resolve" in runtime and "streamtsm.cli" in runtime
        from streamtsm.resolve import open_engine; from streamtsm.backends import BackendError
        try:
            open_engine("tsm_mobilenetv2")
        except (BackendError, ImportError) as exc:
            assert "needs torch" in str(exc) or "blocked" in str(exc), exc
        else:
            raise SystemExit("a registry name must not run without torch")
        print("ok", len(runtime))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stderr[-3000:]


@pytest.mark.runtime
@pytest.mark.parametrize("name", ["missing.pth", "models/missing.safetensors", "sub/dir/missing"])
def test_a_missing_checkpoint_says_it_does_not_exist_not_that_it_needs_torch(tmp_path, name):
    """On a device without torch, a typo in a checkpoint path used to read "this model needs torch"."""
    from streamtsm.resolve import ModelSpecError, open_engine

    spec = str(tmp_path / name) if "/" in name else name
    with pytest.raises(ModelSpecError, match=f"model file {spec} does not exist"):
        open_engine(spec)
    with pytest.raises(ModelSpecError, match="does not exist"):
        open_engine(Path(spec), backend="torch")
