"""Shared helpers for the benchmark scripts (interleaved timing, percentiles, environment record).

The implementation moved to :mod:`streamtsm.bench.timing` so the installed ``streamtsm bench``
command can use it; this module keeps the scripts' imports working and the default output
folder (``benchmarks/results``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench import timing as _timing  # noqa: E402
from streamtsm.bench.timing import Timing, environment, markdown_table, time_interleaved  # noqa: E402,F401

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(stem: str, payload: dict[str, object], markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    return _timing.write_results(stem, payload, markdown, out_dir)
