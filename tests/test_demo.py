"""The demo as users run it: `python demo.py ...` in a subprocess, real files, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from procs import LineReader, finish

torch = pytest.importorskip("torch")

from streamtsm.checkpoints.loader import DEFAULT_MODEL  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: A stop that takes longer than this is a hang (typical: well under 1 s; see benchmarks/shutdown.py).
STOP_DEADLINE_S = 10.0


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    """A small online TSM checkpoint with the synthetic classes (random weights, 64 px, 10 fps)."""
    from streamtsm.card import Preprocessing, Temporal
    from streamtsm.checkpoints import save_model
    from streamtsm.models import create_model
    from streamtsm.synthetic import CLASSES

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=len(CLASSES), width_mult=0.5, class_names=CLASSES)
    model.card = model.card.replace(
        preprocessing=Preprocessing(crop_size=64, resize_short=64),
        temporal=Temporal(mode="online", fps=10.0),
        background_classes=("no_motion",),
    )
    return save_model(model, tmp_path_factory.mktemp("model") / "small.safetensors")


@pytest.fixture(scope="module")
def small_onnx(small_model) -> Path:
    """The same model exported to ONNX (runs on ONNX Runtime: ~1 ms steps, no torch contention)."""
    from streamtsm.checkpoints import load_model
    from streamtsm.export.onnx import export_onnx

    return export_onnx(load_model(small_model), small_model.with_suffix(".onnx"))


def _demo(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(REPO / "demo.py"), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def _json_lines(stdout: str) -> list[dict]:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert lines, "no output on stdout"
    return [json.loads(ln) for ln in lines]  # every line must be valid JSON


def _check_headless(records: list[dict], frames: int, class_names: set[str]) -> None:
    preds = [r for r in records if r["type"] == "prediction"]
    summary = records[-1]
    assert summary["type"] == "summary" and summary["frames"] == frames
    assert summary["predictions"] == len(preds) > 0
    for p in preds:
        assert p["label"] in class_names and 0.0 <= p["score"] <= 1.0
        assert len(p["top_k"]) == 3 and p["top_k"][0] == [p["label"], p["score"]]
        assert set(p["timings"]) == {"capture_wait_ms", "preprocess_ms", "inference_ms", "postprocess_ms", "end_to_end_ms"}
        assert p["timings"]["end_to_end_ms"] >= p["timings"]["inference_ms"] > 0
    indices = [p["frame_index"] for p in preds]
    assert indices == sorted(indices)
    events = [r for r in records if r["type"] == "event"]
    assert all(e["kind"] in ("start", "end") and e["label"] in class_names for e in events)


def test_headless_prints_json_lines(small_model):
    from streamtsm.synthetic import CLASSES

    result = _demo("--source", "synthetic", "--headless", "--max-frames", "60", "--model", str(small_model))
    assert result.returncode == 0, result.stderr
    _check_headless(_json_lines(result.stdout), 60, set(CLASSES))


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the trained default model {DEFAULT_MODEL} is not in this checkout yet")
def test_headless_with_the_default_model():
    from streamtsm.synthetic import CLASSES

    result = _demo("--source", "synthetic", "--headless", "--max-frames", "60")
    assert result.returncode == 0, result.stderr
    _check_headless(_json_lines(result.stdout), 60, set(CLASSES))


def test_output_video_and_screenshot_have_the_overlay(small_model, tmp_path):
    from streamtsm.synthetic import GestureScript

    out, shot = tmp_path / "annotated.mp4", tmp_path / "shot.png"
    result = _demo(
        "--source", "synthetic:5", "--no-realtime", "--headless", "--max-frames", "30",
        "--model", str(small_model), "--output", str(out), "--screenshot", str(shot),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = _json_lines(result.stdout)[-1]
    assert summary["output_frames"] == 30
    cap = cv2.VideoCapture(str(out))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    cap.release()
    assert len(decoded) == 30 and decoded[0].shape == (480, 640, 3)
    # the same frame without overlay: the synthetic script is deterministic
    raw = cv2.resize(GestureScript(5, duration_s=120.0).frame_at(10), (640, 480), interpolation=cv2.INTER_LINEAR)
    diff = np.abs(decoded[10].astype(np.int16) - raw.astype(np.int16)).mean(axis=2)
    assert diff[20:150, 20:250].mean() > 30  # the darkened panel with text and bars
    assert diff[300:, 400:].mean() < 12  # the rest is the video (lossy codec tolerance)
    png = cv2.imread(str(shot))
    assert png is not None and png.shape == (480, 640, 3)


def test_no_camera_says_what_to_try(small_model):
    result = _demo("--headless", "--camera", "7", "--model", str(small_model), timeout=60)
    assert result.returncode == 1
    assert "camera" in result.stderr and "--source synthetic" in result.stderr
    assert "Traceback" not in result.stderr


def test_window_without_gui_support_is_a_clear_error(small_model):
    if "GUI:                           NONE" not in cv2.getBuildInformation() and "NONE" not in [
        ln.split(":", 1)[1].strip() for ln in cv2.getBuildInformation().splitlines() if ln.strip().startswith("GUI:")
    ]:
        pytest.skip("this OpenCV has window support")
    result = _demo("--source", "synthetic", "--max-frames", "5", "--model", str(small_model), timeout=60)
    assert result.returncode == 1
    assert "install opencv-python" in result.stderr and "--headless" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_promptly_and_flushes_the_video(small_onnx, tmp_path, sig):
    # Stopping waits for the inference in flight (~1 ms on ONNX Runtime). How fast it stops is
    # measured in benchmarks/shutdown.py; here the margin only has to catch a hang.
    out = tmp_path / "partial.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stderr.txt", "w+") as err_file:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "demo.py"), "--source", "synthetic", "--headless", "--model", str(small_onnx),
             "--backend", "onnxruntime", "--output", str(out)],
            stdout=subprocess.PIPE, stderr=err_file, text=True, cwd=REPO, env=env,
        )  # fmt: skip
        try:
            reader = LineReader(proc.stdout)
            for _ in range(5):  # a few predictions: the loop runs
                line = reader.readline(timeout=60)
                assert line and json.loads(line)["type"] == "prediction", line
            t0 = time.monotonic()
            proc.send_signal(sig)
            rest = reader.rest(timeout=STOP_DEADLINE_S)
            finish(proc, timeout=STOP_DEADLINE_S)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
        err_file.seek(0)
        err = err_file.read()
    assert proc.returncode == 128 + sig, err
    assert elapsed < STOP_DEADLINE_S, f"took {elapsed:.2f} s to stop; demo log: {err}"
    summary = json.loads(rest.strip().splitlines()[-1])
    assert summary["type"] == "summary" and summary["stopped_by_signal"] == sig
    cap = cv2.VideoCapture(str(out))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == summary["output_frames"] > 0  # finalised: every written frame decodes
