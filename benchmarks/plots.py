"""Redraw the latency plots from a saved ``latency.json`` without re-measuring.

``benchmarks/latency.py`` draws them itself; use this after editing the plot style, or to
plot a results file from another machine. The PNGs go to ``runs/bench/`` unless ``--out``
names another folder.

    python benchmarks/plots.py [benchmarks/results/latency.json] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.plots import plot_end_to_end, plot_latency_per_frame  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, output_dir  # noqa: E402

COMMITTED = Path(__file__).resolve().parent / "results" / "latency.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/plots.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("latency_json", nargs="?", type=Path, default=COMMITTED,
                        help="a latency.json (default: the committed benchmarks/results/latency.json)")
    parser.add_argument("--out", type=Path, default=None, help=f"folder for the PNGs (default {DEFAULT_OUT}/)")
    args = parser.parse_args(argv)
    try:
        payload = json.loads(args.latency_json.read_text())
    except FileNotFoundError:
        parser.error(f"{args.latency_json} does not exist: run `python benchmarks/latency.py` first")
    except ValueError as exc:
        parser.error(f"{args.latency_json} is not valid JSON ({exc}); re-run benchmarks/latency.py")
    if not isinstance(payload, dict) or "results" not in payload or "options" not in payload:
        parser.error(f"{args.latency_json} is not a latency.json written by benchmarks/latency.py (no 'results'/'options')")
    try:
        out = output_dir(args.out, quick=bool(payload["options"].get("quick")))  # a quick run's plots stay out of results/
    except ValueError as exc:
        parser.error(str(exc))
    written = [plot_latency_per_frame(payload, out / "latency_per_frame.png")]
    if payload.get("end_to_end"):
        written.append(plot_end_to_end(payload, out / "end_to_end.png"))
    announce(written)
    return 0


if __name__ == "__main__":
    sys.exit(main())
