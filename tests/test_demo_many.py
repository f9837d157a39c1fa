"""The demo with several sources: one batched MultiRecognizer, JSON lines per stream, a mosaic video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[1]


def test_three_synthetic_sources_headless_and_mosaic(tmp_path):
    out = tmp_path / "mosaic.mp4"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(REPO / "demo.py"), "--source", "synthetic:1", "--source", "synthetic:2", "--source",
         "synthetic:1", "--no-realtime", "--headless", "--max-frames", "30", "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1]
    preds = [r for r in lines if r["type"] == "prediction"]
    ids = {"synthetic:1", "synthetic:2", "synthetic:1#2"}
    assert {p["stream_id"] for p in preds} == ids and set(summary["streams"]) == ids
    assert summary["frames"] == 90 and summary["predictions"] == len(preds) == 30  # 30 frames of each source at 10 of 30 fps
    assert summary["batches"] < summary["batched_frames"]  # the streams' steps really ran together
    by_stream = {sid: [p for p in preds if p["stream_id"] == sid] for sid in ids}
    # the same source twice gives the same predictions: streams do not leak into each other
    assert [p["top_k"] for p in by_stream["synthetic:1"]] == [p["top_k"] for p in by_stream["synthetic:1#2"]]
    cap = cv2.VideoCapture(str(out))
    ok, first = cap.read()
    count = 1 if ok else 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert ok and first.shape == (960, 1280, 3) and count == summary["output_frames"] > 0  # a 2x2 grid of 640x480 tiles


def _demo(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(REPO / "demo.py"), *args], capture_output=True, text=True, env=env,
                          timeout=180, cwd=cwd)


def test_lanes_reach_the_multirecognizer_of_several_sources(tmp_path):
    # how rounds split is tested in test_multi.py; here: the option arrives and the run is whole
    sources = [arg for k in range(8) for arg in ("--source", f"synthetic:{k + 1}")]
    proc = _demo([*sources, "--no-realtime", "--headless", "--max-frames", "12", "--lanes", "2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["lanes"] == 2 and summary["predictions"] == 8 * 4 and summary["lane_batches"] <= summary["batches"]


@pytest.mark.parametrize("args, message", [
    (["--source", "synthetic", "--lanes", "2"], "--lanes 2 splits the batch of several sources"),
    (["--source", "synthetic", "--source", "synthetic:2", "--lanes", "0"], "--lanes 0 is out of range: use a value from 1 to 16"),
    (["--source", "synthetic", "--source", "synthetic:2", "--lanes", "2", "--backend", "torch"], "--lanes 2 needs an engine that can step from several threads"),
    (["--source", "synthetic", "--source", "synthetic:2", "--lanes", "3", "--backend", "tensorrt"], "--backend tensorrt cannot"),
])
def test_bad_lanes_are_one_line_errors(tmp_path, args, message):
    proc = _demo([*args, "--headless", "--max-frames", "3"], tmp_path)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_every_action_started_ends_also_when_its_stream_is_cut_off(tmp_path):
    """--max-frames removes a stream mid-action: its end event is in no Prediction, and the demo
    dropped it (the audit of 5de4cc3). At 400 frames both synthetic scripts are mid-gesture."""
    proc = _demo(["--source", "synthetic:1", "--source", "synthetic:2", "--no-realtime", "--headless",
                  "--max-frames", "400"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    for sid in ("synthetic:1", "synthetic:2"):
        kinds = [e["kind"] for e in lines if e["type"] == "event" and e["stream_id"] == sid]
        assert kinds and kinds == ["start", "end"] * (len(kinds) // 2), kinds  # every start has its end, in order
        last = [e for e in lines if e["type"] == "event" and e["stream_id"] == sid][-1]
        assert last["frame_index"] == 399  # the end came from the cut, at the stream's last prediction
    summary = lines[-1]["streams"]["synthetic:1"]
    assert summary["resets"] == {"stream_start": 1} and summary["dropped"] == 0 and summary["ended_early"] is False


def test_the_mosaic_plays_at_the_fastest_sources_rate_whatever_their_order(tmp_path):
    slow = tmp_path / "slow.avi"
    writer = cv2.VideoWriter(str(slow), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    for order in (["synthetic:1", str(slow)], [str(slow), "synthetic:1"]):
        out = tmp_path / "mosaic.avi"
        args = [arg for spec in order for arg in ("--source", spec)]
        proc = _demo([*args, "--no-realtime", "--headless", "--max-frames", "20", "--output", str(out)], tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        cap = cv2.VideoCapture(str(out))
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
        assert fps == pytest.approx(30.0), order  # it took the first source's: 10 fps for the second order
