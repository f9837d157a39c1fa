"""The demo's event options (--start-steps, --start-threshold) reach the Recognizer; bad values are refused.

Real subprocesses of ``demo.py`` on the embedded default model (ONNX Runtime, no torch needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[1]


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "demo.py"), *args], capture_output=True, text=True,
                          timeout=150, cwd=REPO, env=env)


def _starts(*options: str) -> int:
    result = _demo("--source", "synthetic", "--headless", "--no-realtime", "--max-frames", "450", *options)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert records[-1]["type"] == "summary" and records[-1]["frames"] == 450
    return sum(r["type"] == "event" and r["kind"] == "start" for r in records)


def test_start_steps_holds_back_starts_that_are_not_confirmed():
    assert _starts() >= 2  # 15 s of the scripted source: several gestures start
    assert _starts("--start-steps", "100") == 0  # 10 s of steady confidence: no gesture lasts that long


@pytest.mark.parametrize("options, message", [
    (["--start-steps", "0"], "--start-steps 0 is out of range: use a value from 1 to 100"),
    (["--start-threshold", "0.3"], "--start-threshold 0.3 is out of range: use a value from 0.4 to 1 (0.4 is the end threshold)"),
    (["--start-threshold", "nan"], "--start-threshold nan is out of range: use a value from 0.4 to 1"),
])
def test_bad_event_options_are_refused_in_one_line(options, message):
    result = _demo("--source", "synthetic", "--headless", "--max-frames", "5", *options)
    assert result.returncode != 0 and result.stdout == ""
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in result.stderr


def test_an_action_active_when_the_demo_stops_gets_its_end_line():
    """At 400 frames the scripted source is mid-gesture (rotate_cw): the demo printed its start and never
    its end (the audit of 5de4cc3). The end now comes from reset() when the loop ends."""
    result = _demo("--source", "synthetic:1", "--headless", "--no-realtime", "--max-frames", "400")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    kinds = [r["kind"] for r in records if r["type"] == "event"]
    assert kinds and kinds == ["start", "end"] * (len(kinds) // 2), kinds
    last = [r for r in records if r["type"] == "event"][-1]
    assert last["frame_index"] == 399 and records[-1]["type"] == "summary"  # the end, then the summary
