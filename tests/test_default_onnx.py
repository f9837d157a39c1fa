"""The embedded default model ships as ONNX too, and the two files cannot drift apart.

``streamtsm/assets/default.onnx`` is generated from ``default.safetensors`` by
``streamtsm export default --dynamic-batch -o streamtsm/assets/default.onnx``. Its card records
the safetensors' SHA-256; the outputs of both over several online steps agree; the wheel ships
it; and ``Recognizer()`` and the demo run it with torch unimportable.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import streamtsm
from streamtsm.backends.onnxruntime_backend import open_onnxruntime

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(streamtsm.__file__).resolve().parent / "assets"
ONNX, SAFETENSORS = ASSETS / "default.onnx", ASSETS / "default.safetensors"
REGENERATE = "streamtsm export default --dynamic-batch -o streamtsm/assets/default.onnx"


@pytest.mark.runtime
def test_onnx_records_the_safetensors_hash_and_has_a_dynamic_batch():
    engine = open_onnxruntime(ONNX)
    sha = hashlib.sha256(SAFETENSORS.read_bytes()).hexdigest()
    assert engine.card.weights_sha256 == sha, f"default.onnx is stale: regenerate it with `{REGENERATE}`"
    assert engine.dynamic_batch
    state = engine.init_state(3)  # three streams at once (MultiRecognizer batches them)
    logits, _ = engine.step(np.zeros((3, 3, 80, 80), np.float32), state)
    assert logits.shape == (3, engine.card.num_classes)


def test_onnx_and_safetensors_agree_over_online_steps():
    pytest.importorskip("torch")
    from streamtsm.backends.torch_backend import open_torch
    from streamtsm.checkpoints import load_model

    ort, ref = open_onnxruntime(ONNX), open_torch(load_model(None))
    assert ort.card.class_names == ref.card.class_names and ort.card.preprocessing == ref.card.preprocessing
    s_o, s_t = ort.init_state(), ref.init_state()
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(8):  # state carried on both sides: drift would accumulate
        x = rng.standard_normal((1, 3, 80, 80), dtype=np.float32)
        l_o, s_o = ort.step(x, s_o)
        l_t, s_t = ref.step(x, s_t)
        worst = max(worst, float(np.abs(l_o - l_t).max()))
    assert worst < 1e-4, f"default.onnx differs from default.safetensors by {worst:.2g}: regenerate it with `{REGENERATE}`"


@pytest.mark.runtime
def test_the_wheel_ships_the_onnx(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("streamtsm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "streamtsm/assets/default.onnx" in names and "streamtsm/assets/default.safetensors" in names
    assert "streamtsm/triton/templates/model.py" in names  # the Triton python-backend model


def _frames(n: int = 45) -> list[np.ndarray]:
    from streamtsm.sources import SyntheticSource

    with SyntheticSource(seed=3, duration_s=n / 30.0 + 1, realtime=False) as source:
        return [frame.image for _, frame in zip(range(n), source)]


def test_recognizer_runs_the_default_without_torch_and_equals_the_torch_engine(tmp_path):
    pytest.importorskip("torch")
    frames = _frames()
    np.save(tmp_path / "frames.npy", np.stack(frames))
    code = textwrap.dedent(
        """
        import json, sys
        sys.modules["torch"] = None  # a device install: numpy, OpenCV, onnxruntime
        import numpy as np
        import streamtsm
        rec = streamtsm.Recognizer()
        frames = np.load(sys.argv[1])
        out = [p.probabilities.tolist() for i, f in enumerate(frames) if (p := rec.push(f, i / 30.0)) is not None]
        print(json.dumps({"engine": rec.engine.name, "probabilities": out}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "frames.npy")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    assert child["engine"].startswith("onnxruntime")
    ref = streamtsm.Recognizer(backend="torch")
    expected = [p.probabilities for i, f in enumerate(frames) if (p := ref.push(f, i / 30.0)) is not None]
    got = np.array(child["probabilities"], np.float32)
    assert got.shape == (len(expected), ref.card.num_classes) and len(expected) == 15
    assert float(np.abs(got - np.stack(expected)).max()) < 1e-4


def test_demo_runs_the_default_without_torch(tmp_path):
    code = "import sys; sys.modules['torch'] = None; from streamtsm.cli import main; sys.exit(main(['demo', *sys.argv[1:]]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, "--source", "synthetic", "--no-realtime", "--headless", "--max-frames", "30"],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()][-1]
    assert summary["type"] == "summary" and summary["backend"].startswith("onnxruntime") and summary["predictions"] == 10
