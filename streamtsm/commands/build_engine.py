"""``streamtsm build-engine engines/NAME.onnx``: a TensorRT engine (needs an NVIDIA GPU)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build-engine",
        help="build a TensorRT engine (.plan) from an exported ONNX file (NVIDIA GPU / Jetson)",
        description=(
            "Build a TensorRT engine from an ONNX file written by `streamtsm export`. The engine is written next to "
            "the ONNX file as NAME.<fp16|fp32>.plan with a JSON sidecar (model card, ONNX SHA-256, TensorRT version, "
            "GPU, precision). Engines are specific to the TensorRT version and GPU model: an existing engine is "
            "reused only if its sidecar matches, otherwise it is rebuilt (--force rebuilds anyway). With --fp16 the "
            "layers run in half precision while frame, state and logits stay fp32. An int8 graph (`streamtsm export "
            "--int8 --int8-target tensorrt`) builds with TensorRT's explicit quantization as NAME.int8.plan, or "
            "NAME.int8_fp16.plan with --fp16 for the layers left unquantized. A timing cache next to the "
            "engine makes rebuilds fast."
        ),
    )
    p.add_argument("onnx", type=Path, help="exported .onnx file")
    p.add_argument("-o", "--output", type=Path, help="engine path (default: next to the ONNX file, NAME.<precision>.plan)")
    p.add_argument("--fp16", action="store_true", help="build fp16 layers (recommended on Jetson and RTX GPUs)")
    p.add_argument("--workspace-gb", type=float, default=1.0, help="builder workspace limit in GB (default 1.0)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch for dynamic-batch exports (default 8)")
    p.add_argument("--timing-cache", type=Path, help="timing cache file (default: .timing.cache beside the engine)")
    p.add_argument("--force", action="store_true", help="rebuild even if a matching engine exists")
    p.set_defaults(func=run)


def check_input(onnx: Path) -> None:
    """Refuse what no TensorRT could build, before asking whether TensorRT is here (standard library only)."""
    is_onnx = onnx.suffix.lower() == ".onnx"
    takes = "" if is_onnx else "; build-engine takes an .onnx graph written by `streamtsm export`"
    if not onnx.exists():
        raise FileNotFoundError(f"{'ONNX file ' if is_onnx else ''}{onnx} does not exist{takes or '; export one with `streamtsm export MODEL -o ' + str(onnx) + '`'}")
    if onnx.is_dir():
        raise ValueError(f"{onnx} is a directory; pass the .onnx file inside it")
    if not is_onnx:
        stem = onnx.name.split(".")[0] or "model"
        raise ValueError(f"{onnx} is not an .onnx graph: build-engine takes the file `streamtsm export` writes; for a "
                         f"checkpoint: `streamtsm export {onnx} -o engines/{stem}.onnx`, then "
                         f"`streamtsm build-engine engines/{stem}.onnx`")


def run(args: argparse.Namespace) -> int:
    from ..outputs import check_output_path
    from .ranges import check_range

    check_range("--workspace-gb", args.workspace_gb, 0, 1024, low_open=True)
    check_range("--max-batch", args.max_batch, 1, 1024)
    check_input(args.onnx)
    if args.output is not None:
        check_output_path(args.output, suffixes=(".plan",), inputs=(args.onnx,), what="-o/--output")
    from ..backends.tensorrt_backend import tensorrt_unavailable_reason
    from ..backends.tensorrt_engine import (
        build_engine, current_gpu_name, engine_is_stale, engine_path_for, onnx_precision, read_onnx_graph,
    )

    # torch-free and TensorRT-free: an unreadable file, one without a card, or an int8 graph quantized for
    # ONNX Runtime (--int8-target cpu) is refused for what it is, not with "TensorRT is missing"
    graph = read_onnx_graph(args.onnx)  # read once: precision, staleness and the build use it
    precision = onnx_precision(graph, "fp16" if args.fp16 else "fp32")  # int8 graphs: int8 / int8_fp16
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise RuntimeError(
            f"cannot build a TensorRT engine here: {reason}. Build on the target machine (engines are GPU-specific); "
            f"meanwhile {args.onnx} runs with ONNX Runtime"
        )
    import tensorrt as trt

    plan = args.output or engine_path_for(args.onnx, precision)
    stale = engine_is_stale(plan, graph, trt_version=str(trt.__version__), gpu=current_gpu_name(), precision=precision)
    if stale is None and not args.force:
        print(f"{plan} is up to date (same ONNX, TensorRT {trt.__version__}, GPU and precision)")
        return 0
    print(f"building {plan}: {'forced' if stale is None else stale}")
    build_engine(graph, plan, fp16=args.fp16, workspace_gb=args.workspace_gb,
                 timing_cache=args.timing_cache or plan.with_name(".timing.cache"), max_batch=args.max_batch)
    print(f"wrote {plan} and {plan.name}.json")
    return 0
