"""Per-frame latency of the online TSM: ONNX Runtime vs torch, and the cost of the shift state.

Three variants, one process, interleaved (every round calls each once, in rotating order, so
load from other processes hits all of them alike):

* ``torch online``   - ``open_torch(...).step`` of online tsm_mobilenetv2 (width 1.0, 224x224);
* ``ORT online``     - the same weights exported by ``export_onnx`` (frame + 10 state tensors);
* ``ORT no-shift``   - tsn_mobilenetv2 with the *same* weights, exported the same way (per-frame
  graph without state): the cost of one 2D-CNN pass with no shift at all.

Reported: median, p90, p99 per variant; torch/ORT ratio; ORT online / ORT no-shift (the
issue's budget: <= 1.10). Weights are random (latency does not depend on their values).

    python benchmarks/onnx_vs_torch.py [--rounds 300] [--threads 2] [--stem onnx_vs_torch]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import environment, markdown_table, time_interleaved, write_results  # noqa: I001

from streamtsm.backends.onnxruntime_backend import open_onnxruntime
from streamtsm.backends.torch_backend import open_torch
from streamtsm.export.onnx import export_onnx
from streamtsm.models import create_model


class Stepper:
    """Calls ``backend.step`` on a fixed preprocessed frame, carrying the state like a session."""

    def __init__(self, backend, frame: np.ndarray) -> None:
        self.backend, self.frame = backend, frame
        self.state = backend.init_state(1)

    def __call__(self) -> None:
        _, self.state = self.backend.step(self.frame, self.state)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for both engines")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--stem", default="onnx_vs_torch", help="results file name stem in benchmarks/results/")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tsm = create_model("tsm_mobilenetv2", num_classes=27).eval()
    tsn = create_model("tsn_mobilenetv2", num_classes=27).eval()
    tsn.load_state_dict(tsm.state_dict(), strict=True)  # same weights, no shift
    frame = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), dtype=np.float32)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_tsm = export_onnx(tsm, Path(tmp) / "tsm.onnx")
        onnx_tsn = export_onnx(tsn, Path(tmp) / "tsn.onnx")
        ort_tsm = open_onnxruntime(onnx_tsm, ["CPUExecutionProvider"], threads=args.threads)
        ort_tsn = open_onnxruntime(onnx_tsn, ["CPUExecutionProvider"], threads=args.threads)
        variants = {
            "torch online": Stepper(open_torch(tsm), frame),
            "ORT online": Stepper(ort_tsm, frame),
            "ORT no-shift": Stepper(ort_tsn, frame),
        }
        n_states = len(ort_tsm.card.state)
        timings = time_interleaved(variants, rounds=args.rounds, warmup=args.warmup)
    load_after = os.getloadavg()[0]

    t, o, n = timings["torch online"], timings["ORT online"], timings["ORT no-shift"]
    ratios = {
        "torch_over_ort_median": t.median_ms / o.median_ms,
        "torch_over_ort_p90": t.p90_ms / o.p90_ms,
        "ort_online_over_noshift_median": o.median_ms / n.median_ms,
        "ort_online_over_noshift_p90": o.p90_ms / n.p90_ms,
    }
    env = environment(threads=args.threads, load_avg_1min_before=load_before, load_avg_1min_after=load_after)
    payload = {
        "model": "tsm_mobilenetv2 width 1.0 (online, %d state tensors) vs tsn_mobilenetv2 same weights" % n_states,
        "input": [1, 3, args.size, args.size],
        "rounds": args.rounds,
        "timings": {k: v for k, v in timings.items()},
        "ratios": ratios,
        "environment": env,
    }
    rows = [
        {"variant": v.name, "median ms": v.median_ms, "p90 ms": v.p90_ms, "p99 ms": v.p99_ms, "mean ms": v.mean_ms, "n": v.n}
        for v in timings.values()
    ]
    md = "\n".join(
        [
            f"# ONNX Runtime vs torch, online TSM step ({args.size}x{args.size}, batch 1, {args.threads} threads)",
            "",
            markdown_table(rows, ["variant", "median ms", "p90 ms", "p99 ms", "mean ms", "n"]),
            "",
            f"- torch / ORT (median): **{ratios['torch_over_ort_median']:.2f}x** (p90 {ratios['torch_over_ort_p90']:.2f}x)",
            f"- ORT online / ORT no-shift (median): **{ratios['ort_online_over_noshift_median']:.3f}** "
            f"(p90 {ratios['ort_online_over_noshift_p90']:.3f}); budget <= 1.10",
            "",
            f"Interleaved, {args.warmup} warm-up rounds then {args.rounds} rounds. CPU: {env.get('processor')}, "
            f"{env.get('cpu_count')} cores shared with other work: 1-min load average {load_before:.2f} before, "
            f"{load_after:.2f} after. torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}. "
            "Random weights (latency does not depend on them).",
        ]
    )
    js, mdp = write_results(args.stem, payload, md)
    print(md)
    print(f"\nwrote {js} and {mdp}")


if __name__ == "__main__":
    main()
