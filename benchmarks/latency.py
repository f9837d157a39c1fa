"""Latency of online TSM vs 3D-CNN sliding windows (per prediction, per frame, end to end).

The same as ``streamtsm bench`` (the engine is ``streamtsm.bench.latency``):

    python benchmarks/latency.py --out benchmarks/results   # deliberate full run, ~15 min on 2 idle cores
    python benchmarks/latency.py --quick                    # smoke run into runs/bench/: numbers meaningless
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.commands.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="benchmarks/latency.py"))
