"""A short soak (3,000 frames) with the same script and the same leak checks as benchmarks/soak.py.

Thresholds: RSS growth < 20 MB and no thread/fd growth are the full run's limits, kept as is.
Latency drift (p99 of the last window over the first) is a speed figure, so here it is reported,
not judged: the suite shares 2 cores with other workers, and one busy second of theirs moved a
1,000-frame window's p99 3x in CI. The 100k-frame run (benchmarks/results/soak.md) judges it at 1.2.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
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


@pytest.fixture(scope="module")
def soak():
    return load_soak_module()


@pytest.fixture(scope="module")
def short_soak(soak):
    config = soak.SoakConfig(frames=3000, warmup=500, window=1000, sample_every=25, crop=96, max_p99_ratio=None)
    return soak.run_soak(config, progress=False)


def test_short_soak_has_no_leak(short_soak, soak, tmp_path: Path) -> None:
    result = short_soak
    paths = soak.write(result, tmp_path)
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert result.frames == 3000 and result.predictions == 3000, "every frame must reach the model"
    failed = [k for k, ok in result.verdicts.items() if not ok]
    assert not failed, f"{failed}\n{soak.to_markdown(result)}"
    assert result.engine in ("onnxruntime", "torch")
    assert not any(k.startswith("p99") for k in result.verdicts), "drift is not judged in the suite"
    assert "reported, not judged" in soak.to_markdown(result)
    assert len(result.latency_ms) == 3000 and all(math.isfinite(v) and v > 0 for v in result.latency_ms)
    assert 0 < result.p99_first_ms and 0 < result.p99_last_ms


def clean_result(soak, limit: float | None, ratio: float):
    """A SoakResult with no leak and every frame predicted, except for the given drift."""
    values = {f.name: 0 for f in dataclasses.fields(soak.SoakResult) if f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING}  # fmt: skip
    values.update(config=soak.SoakConfig(frames=3000, max_p99_ratio=limit), engine="onnxruntime", frames=3000,
                  predictions=3000, p99_ratio=ratio)  # fmt: skip
    return soak.SoakResult(**values)


@pytest.mark.parametrize(
    ("limit", "ratio", "verdicts"),
    [
        (None, 3.08, {}),
        (2.0, 1.5, {"p99 last/first <= 2": True}),
        (2.0, 2.0, {"p99 last/first <= 2": True}),
        (2.0, 3.08, {"p99 last/first <= 2": False}),
        (1.2, 1.21, {"p99 last/first <= 1.2": False}),
    ],
)
def test_drift_is_judged_only_when_a_limit_is_set(soak, limit, ratio: float, verdicts: dict[str, bool]) -> None:
    judged = soak.judge(clean_result(soak, limit, ratio), 3000)
    assert {k: v for k, v in judged.items() if k.startswith("p99")} == verdicts
    assert all(v for k, v in judged.items() if not k.startswith("p99")), judged
    assert soak.judge(clean_result(soak, limit, ratio), 3001)["every frame predicted"] is False
