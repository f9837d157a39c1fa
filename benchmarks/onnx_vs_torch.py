"""Per-frame latency of the online TSM: ONNX Runtime vs torch, and the cost of the shift state.

Three variants, one process, interleaved (every round calls each once, in rotating order, so
load from other processes hits all of them alike):

* ``torch online``   - the torch engine's ``step`` of online tsm_mobilenetv2 (width 1.0, 224x224);
* ``ORT online``     - the same weights on ONNX Runtime (frame + 10 state tensors in the graph);
* ``ORT no-shift``   - tsn_mobilenetv2 with the *same* weights on ONNX Runtime (per-frame graph
  without state): the cost of one 2D-CNN pass with no shift at all.

Models are built by ``streamtsm.resolve`` (random weights: latency does not depend on their
values) and opened by it; ONNX Runtime runs the export cache's graphs with the runtime's
defaults (no spinning workers) and ``--threads`` intra-op threads.

Reported: median, p90, p99 per variant; torch/ORT ratio; ORT online / ORT no-shift (the
budget: <= 1.10).

    python benchmarks/onnx_vs_torch.py --out benchmarks/results                                  # deliberate run, 1 thread
    python benchmarks/onnx_vs_torch.py --threads 2 --stem onnx_vs_torch_2threads --out benchmarks/results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.latency import make_call  # noqa: E402
from streamtsm.bench.machine import environment, load_average  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, markdown_table, output_dir, write_results  # noqa: E402
from streamtsm.bench.timing import time_interleaved  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/onnx_vs_torch.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=300, help="timed rounds (default %(default)s)")
    ap.add_argument("--warmup", type=int, default=15, help="warm-up rounds (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for both engines (default %(default)s)")
    ap.add_argument("--size", type=int, default=224, help="frame side in pixels (default %(default)s)")
    ap.add_argument("--stem", default="onnx_vs_torch", help="results file name stem (default %(default)s)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"results folder (default {DEFAULT_OUT}/; only a deliberate full run passes benchmarks/results)")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or args.threads < 1 or args.size < 32:
        ap.error("--rounds and --threads must be >= 1, --warmup >= 0, --size >= 32")
    try:
        out = output_dir(args.out, quick=False)
    except ValueError as exc:
        ap.error(str(exc))

    from streamtsm.resolve import load_torch_model, open_engine

    tsm = load_torch_model("tsm_mobilenetv2", num_classes=27, input_size=args.size)
    tsn = load_torch_model("tsn_mobilenetv2", num_classes=27, input_size=args.size)
    tsn.load_state_dict(tsm.state_dict(), strict=True)  # same weights, no shift
    frame = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size), dtype=np.float32)
    load_before = load_average()
    engines = {
        "torch online": open_engine(tsm, "torch", threads=args.threads),
        "ORT online": open_engine(tsm, "onnxruntime", threads=args.threads),
        "ORT no-shift": open_engine(tsn, "onnxruntime", threads=args.threads),
    }
    try:
        n_states = len(engines["ORT online"].card.state)
        timings = time_interleaved({k: make_call(e, frame, online=True) for k, e in engines.items()},
                                   rounds=args.rounds, warmup=args.warmup)
    finally:
        for engine in engines.values():
            engine.close()
    load_after = load_average()

    t, o, n = timings["torch online"], timings["ORT online"], timings["ORT no-shift"]
    ratios = {
        "torch_over_ort_median": t.median_ms / o.median_ms,
        "torch_over_ort_p90": t.p90_ms / o.p90_ms,
        "ort_online_over_noshift_median": o.median_ms / n.median_ms,
        "ort_online_over_noshift_p90": o.p90_ms / n.p90_ms,
    }
    env = environment(threads=args.threads, load_avg_1min_before=load_before, load_avg_1min_after=load_after)
    payload = {
        "model": f"tsm_mobilenetv2 width 1.0 (online, {n_states} state tensors) vs tsn_mobilenetv2 same weights",
        "input": [1, 3, args.size, args.size],
        "rounds": args.rounds,
        "timings": dict(timings),
        "ratios": ratios,
        "environment": env,
    }
    rows = [{"variant": v.name, "median ms": v.median_ms, "p90 ms": v.p90_ms, "p99 ms": v.p99_ms, "mean ms": v.mean_ms, "n": v.n}
            for v in timings.values()]
    md = "\n".join([
        f"# ONNX Runtime vs torch, online TSM step ({args.size}x{args.size}, batch 1, {args.threads} threads)",
        "",
        markdown_table(rows),
        "",
        f"- torch / ORT (median): **{ratios['torch_over_ort_median']:.2f}x** (p90 {ratios['torch_over_ort_p90']:.2f}x)",
        f"- ORT online / ORT no-shift (median): **{ratios['ort_online_over_noshift_median']:.3f}** "
        f"(p90 {ratios['ort_online_over_noshift_p90']:.3f}); budget <= 1.10",
        "",
        f"Interleaved, {args.warmup} warm-up rounds then {args.rounds} rounds. CPU: {env.get('processor')}, "
        f"{env.get('cpu_count')} cores shared with other work: 1-min load average {load_before:.2f} before, "
        f"{load_after:.2f} after. torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}. "
        "Random weights (latency does not depend on them).",
    ])
    paths = write_results(args.stem, payload, md, out)
    print(md)
    announce(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
