"""Latency of online TSM vs 3D-CNN sliding windows (per prediction, per frame, end to end).

Thin wrapper: the engine is ``streamtsm.bench.latency`` (also run by ``streamtsm bench``).

    python benchmarks/latency.py                      # full run, ~10 min on 2 CPU cores
    python benchmarks/latency.py --quick --out /tmp/x # smoke run: tiny inputs, numbers meaningless
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.latency import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="benchmarks/latency.py"))
