"""A short soak (3,000 frames) with the same script and the same checks as benchmarks/soak.py.

Thresholds: RSS growth < 20 MB and no thread/fd growth are the full run's limits, kept as is.
The p99 ratio is relaxed from 1.2 to 2.0 here: the windows are 1,000 frames (p99 = the 10th
worst frame), and the 2 CI cores are shared, so one busy second of another process moves it;
the 100k-frame run in benchmarks/results/soak.md applies the real 1.2 limit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]


def load_soak_module():
    spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_short_soak_has_no_leak_and_no_latency_drift(tmp_path: Path) -> None:
    soak = load_soak_module()
    config = soak.SoakConfig(frames=3000, warmup=500, window=1000, sample_every=25, crop=96, max_p99_ratio=2.0)
    result = soak.run_soak(config, progress=False)
    paths = soak.write(result, tmp_path)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert result.frames == 3000 and result.predictions == 3000, "every frame must reach the model"
    failed = [k for k, ok in result.verdicts.items() if not ok]
    assert not failed, f"{failed}\n{soak.to_markdown(result)}"
    assert result.engine in ("onnxruntime", "torch")
