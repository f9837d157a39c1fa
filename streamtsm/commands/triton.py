"""``streamtsm triton MODEL.onnx -o model_repository/``: a Triton model repository with implicit state."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "triton",
        help="generate a Triton Inference Server model repository (sequence batcher, implicit state)",
        description=(
            "Write a Triton model repository for an exported online model: config.pbtxt with the sequence batcher "
            "and implicit state (one state entry per shift point: state_in.i <- state_out.i, zero initial state), "
            "labels.txt and the model in version directory 1. Each camera is one sequence (correlation id); clients "
            "send only 'frame' and read 'logits', Triton carries the state. Export with --dynamic-batch so Triton "
            "can batch several cameras per execution (oldest strategy, --max-batch, --max-candidates)."
        ),
    )
    p.add_argument("model", type=Path, help="exported .onnx (or TensorRT .plan with its sidecar)")
    p.add_argument("-o", "--output", type=Path, default=Path("model_repository"), help="repository directory")
    p.add_argument("--name", help="model name in the repository (default: file stem)")
    p.add_argument("--max-batch", type=int, default=8, help="cameras per execution (dynamic-batch exports)")
    p.add_argument("--max-candidates", type=int, default=64, help="max_candidate_sequences: cameras served at once")
    p.add_argument("--idle-ms", type=int, default=5000, help="a camera silent this long loses its state slot")
    p.add_argument("--cpu", action="store_true", help="instance_group KIND_CPU instead of KIND_GPU")
    p.add_argument("--trt-accelerator", action="store_true", help="ONNX Runtime with the TensorRT accelerator (fp16)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.triton import TritonOptions, write_triton_repository

    options = TritonOptions(
        max_batch_size=args.max_batch, max_candidate_sequences=args.max_candidates,
        max_sequence_idle_us=args.idle_ms * 1000, instance_kind="KIND_CPU" if args.cpu else "KIND_GPU",
        tensorrt_accelerator=args.trt_accelerator,
    )
    model_dir = write_triton_repository(args.model, args.output, name=args.name, options=options)
    print(f"wrote {model_dir}/config.pbtxt (+ labels.txt, 1/{'model.plan' if args.model.suffix == '.plan' else 'model.onnx'})")
    print(f"serve: tritonserver --model-repository={args.output.resolve()}")
    return 0
