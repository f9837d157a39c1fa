"""How far each model's path is from this machine's physical fp32 limit.

The limit: measured fp32 matrix-multiply throughput (numpy, torch and ONNX Runtime sgemm, N x N, best of
the timed calls; FLOPs = 2 x N^3). Each model's achieved throughput: FLOPs per prediction
(2 x MACs of its convs and linears) divided by its median prediction time. The ratio is the
fraction of the machine a path uses: a small one means the path is bound by memory traffic,
small kernels or framework overhead, not by arithmetic. GEMM calls and model calls are timed
interleaved in one run, so load from other users hits both alike.

    python benchmarks/roofline.py                    # 2048^2 GEMM, all models, torch + ONNX Runtime, into runs/bench/
    python benchmarks/roofline.py --quick            # smoke run: numbers meaningless
    python benchmarks/roofline.py --from-latency benchmarks/results/latency.json --out benchmarks/results

``--from-latency`` takes each model's FLOPs and median prediction time from a latency run and
only measures the GEMM limit now (not interleaved: faster, but load may differ between the two).
Models are built and opened by ``streamtsm.resolve`` (as in the latency benchmark).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.latency import (  # noqa: E402
    DEFAULT_MODELS,
    LatencyOptions,
    available_backends,
    prepare_variants,
)
from streamtsm.bench.machine import environment  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, markdown_table, report_header, write_results  # noqa: E402
from streamtsm.bench.timing import time_interleaved  # noqa: E402
from streamtsm.commands.helptext import RawDescriptionDefaultsFormatter  # noqa: E402


def gemm_calls(n: int, threads: int | None = None):
    """Zero-argument sgemm calls (numpy, torch, and ONNX Runtime's MLAS when installed) on fixed N x N matrices.

    The limit is the best of them. ONNX Runtime's own MatMul matters: its kernels (MLAS, AVX-512
    where the CPU has it) are the ones its convolutions use, and on this machine it runs sgemm
    ~1.7x faster than numpy's BLAS -- with only numpy and torch as the reference, ONNX Runtime's
    3D convolutions came out at 1.9x "the peak" (measured), which says the reference was wrong.
    """
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tout = torch.empty(n, n)
    calls = {f"sgemm_torch_{n}": lambda: torch.mm(ta, tb, out=tout)}
    if threads is None:  # numpy's BLAS threads cannot be set once it is loaded: with --threads it would use all cores
        calls[f"sgemm_numpy_{n}"] = lambda: np.matmul(a, b, out=out)
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return calls
    spec = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in ("a", "b", "c")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {"a": a, "b": b}
    calls[f"sgemm_onnxruntime_{n}"] = lambda: session.run(None, feeds)
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/roofline.py", description=__doc__, formatter_class=RawDescriptionDefaultsFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names (default: %(default)s)")
    parser.add_argument("--backends", default="torch,onnxruntime", help="comma-separated (missing ones are skipped; default: %(default)s)")
    parser.add_argument("--gemm-size", type=int, default=2048, help="N of the N x N sgemm (default 2048)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--gemm-rounds", type=int, default=20, help="extra GEMM-only rounds for the limit (default 20)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of torch, ONNX Runtime and the GEMMs (default %(default)s, as the latency benchmark)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs and 256^2 GEMM, one round (smoke test)")
    parser.add_argument("--from-latency", type=Path, default=None,
                        help="take model times and FLOPs from this latency.json instead of timing the models again")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default {DEFAULT_OUT}/; only a deliberate full run passes benchmarks/results)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.gemm_size < 16 or args.rounds < 1:
        parser.error("--gemm-size must be >= 16 and --rounds >= 1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    n = 256 if args.quick else args.gemm_size
    rounds = 1 if args.quick else args.rounds
    try:
        options = LatencyOptions(
            models=tuple(m for m in args.models.split(",") if m), backends=tuple(b for b in args.backends.split(",") if b),
            quick=args.quick, threads=args.threads, progress=not args.quick, out=args.out,
        )  # refuses --quick into benchmarks/results before anything is measured
    except ValueError as exc:
        parser.error(str(exc))
    env = environment(precision="fp32", batch=1, gemm_size=n, quick=args.quick)
    backends, skipped = available_backends(options.backends)
    gemms = gemm_calls(n, args.threads)
    measured: list[tuple[str, str, bool, float, float]] = []  # (model, backend, online, MACs, median ms)
    if args.from_latency is not None:
        try:
            latency = json.loads(args.from_latency.read_text())
            measured = [(r["model"], r["backend"], r["mode"] == "online", r["gmacs"] * 1e9, r["per_prediction"]["median_ms"])
                        for r in latency["results"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"{args.from_latency}: not a readable latency.json from benchmarks/latency.py ({exc})")
        env["model_times_from"] = f"{args.from_latency} ({latency.get('environment', {}).get('date_utc')})"
        timings = time_interleaved(gemms, rounds=rounds, warmup=1, progress=False)
    else:
        variants, failures = prepare_variants(options, backends)
        skipped.update(failures)
        calls = dict(gemms) | {v.key: v.call for v in variants}
        try:
            timings = time_interleaved(calls, rounds=rounds, warmup=1, progress=not args.quick)
        finally:
            for v in variants:
                v.engine.close()
        measured = [(v.model, getattr(v.engine, "name", v.backend), v.online, v.macs, timings[v.key].median_ms) for v in variants]
    # The limit is the best GEMM call: give each library more calls of its own, one library at a
    # time, so neither an unlucky slice on the shared box nor the previous library's spinning
    # OpenMP workers (torch's keep the cores busy for a while after each call) set it low.
    best_ms = {name: timings[name].min_ms for name in gemms}
    for name, call in gemms.items():
        alone = time_interleaved({name: call}, rounds=1 if args.quick else args.gemm_rounds, warmup=1, progress=False)
        best_ms[name] = min(best_ms[name], alone[name].min_ms)
    gemm_flops = 2.0 * n**3
    peaks = {name: gemm_flops / (best_ms[name] / 1e3) / 1e9 for name in gemms}  # best call = the limit
    peak_name = max(peaks, key=peaks.get)
    peak = peaks[peak_name]
    rows = []
    for model, backend, online, macs, median_ms in measured:
        achieved = 2.0 * macs / (median_ms / 1e3) / 1e9
        rows.append({
            "model": model, "backend": backend, "mode": "online" if online else "window",
            "gflops_per_prediction": 2.0 * macs / 1e9, "median_ms": median_ms,
            "achieved_gflops_per_s": achieved, "fraction_of_peak": achieved / peak,
        })
    command = " ".join(["python", "benchmarks/roofline.py", *map(shlex.quote, argv)])
    payload = {
        "command": command, "environment": env, "load_average_end": environment()["load_average_1min"],
        "gemm": {"n": n, "flops_per_call": gemm_flops, "gflops_per_s": peaks, "timings": {k: timings[k] for k in gemms},
                 "peak_gflops_per_s": peak, "peak_from": peak_name},
        "models": rows, "skipped": skipped,
        "note": "FLOPs = 2 x MACs; peak = best sgemm call; achieved = FLOPs per prediction / median prediction time",
    }
    md = "\n".join([
        *report_header("Roofline: achieved fraction of measured fp32 GEMM throughput", payload,
                       f"fp32 sgemm {n}×{n}, {args.threads or 'default'} thread(s)", quick=args.quick),
        f"Machine limit (fp32 {n}×{n} sgemm, best call, FLOPs = 2·N³): "
        + ", ".join(f"{k} **{g:.1f} GFLOP/s**" for k, g in peaks.items()) + f"; peak used below: {peak:.1f} GFLOP/s.",
        "",
        markdown_table(rows, ["model", "backend", "mode", "gflops_per_prediction", "median_ms", "achieved_gflops_per_s", "fraction_of_peak"]),
        "",
        "GFLOPs per prediction = 2 × MACs of convolutions and linear layers (torch FlopCounterMode). A fraction well below 1 "
        "means the path is limited by memory traffic, small or depthwise kernels and framework overhead, not arithmetic.",
    ] + ([
        "",
        "**A fraction above 1 cannot be real**: the GEMM reference was measured low (another process held a core "
        "during its calls) or the model's time comes from a run on a less loaded machine. Re-run on an idle machine.",
    ] if any(r["fraction_of_peak"] > 1.0 for r in rows) else []) + ([""] + [f"- skipped {k}: {v}" for k, v in skipped.items()] if skipped else []))
    paths = write_results("roofline", payload, md, options.out)
    print(md)
    announce(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
