"""``streamtsm triton MODEL -o model_repository/``: a Triton model repository, one sequence per camera."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..triton.server import LAUNCHER, SETUP_COMMAND, default_server_dir
from ..triton.repository import (
    BACKENDS, MODEL_FILES, TritonError, TritonOptions, TritonRangeError, check_model_name, check_output_dir,
    default_backend, write_triton_repository,
)
from .ranges import check_range, out_of_range_message


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "triton",
        help="generate a Triton Inference Server model repository (sequence batcher, one sequence per camera)",
        description=(
            "Write a Triton model repository for an exported online model: config.pbtxt with the sequence batcher, "
            "labels.txt and the model in version directory 1. Each camera is one sequence (correlation id); clients "
            "send only 'frame' and read 'logits'. --backend onnxruntime/tensorrt (GPU servers): Triton carries the "
            "state (implicit state: one entry per shift point, state_in.i <- state_out.i, zero initial state). "
            "--backend python (CPU servers): model.py runs the ONNX with ONNX Runtime and keeps each sequence's "
            "state by correlation id (START/END/CORRID). Export with --dynamic-batch so Triton can batch several "
            "cameras per execution."
        ),
    )
    p.add_argument("model", type=Path,
                   help="exported .onnx (or TensorRT .plan with its sidecar), 'default' (the embedded default model) or "
                        "an online weight name (`streamtsm models`; its cached export, made now where torch is installed)")
    p.add_argument("-o", "--output", type=Path, default=Path("model_repository"), help="repository directory (default: model_repository)")
    p.add_argument("--name", help="model name in the repository (default: the weight name, 'default', or the file name up to its first dot)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="Triton backend (default: tensorrt for a .plan, onnxruntime for an .onnx)")
    p.add_argument("--max-batch", type=int, default=8, help="cameras per execution (dynamic-batch exports; python: always); default 8")
    p.add_argument("--max-candidates", type=int, default=64, help="max_candidate_sequences: cameras served at once; default 64")
    p.add_argument("--idle-ms", type=int, default=5000, help="a camera silent this long loses its state; default 5000")
    p.add_argument("--instances", type=int, default=1, help="model instances, each holding its own sequences; default 1")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads per instance: python backend (default 1) and onnxruntime backend (Triton's "
                        "intra_op_thread_count; default ONNX Runtime's, one per core); not for tensorrt")
    p.add_argument("--cpu", action="store_true", help="onnxruntime backend: instance_group KIND_CPU instead of KIND_GPU (python is always CPU)")
    p.add_argument("--trt-accelerator", action="store_true",
                   help="onnxruntime backend on GPU instances: the TensorRT execution accelerator (fp16); not with --cpu")
    p.set_defaults(func=run)


#: TritonOptions field -> the flag that sets it (errors name the flag).
_FLAGS = {"max_batch_size": "--max-batch", "max_candidate_sequences": "--max-candidates",
          "instance_count": "--instances", "threads": "--threads"}


def _exported_file(model: Path) -> tuple[Path, str | None]:
    """The exported file MODEL names, and the repository name it suggests (None: from the file).

    Like every other command, 'default' is the embedded model and a weight name its cached
    export; a path is a path, and one that does not exist is reported by the repository writer.
    """
    from ..resolve import DEFAULT_ONNX, cached_export_of
    from ..weights import find_weight, list_weights

    spec = str(model)
    if spec == "default":  # as in open_engine: the name wins over a file called 'default'
        return DEFAULT_ONNX, "default"
    if model.exists() or model.suffix.lower() in (".onnx", ".plan"):
        return model, None
    entry = find_weight(spec)
    if entry is None:
        return model, None
    if entry.temporal is None or entry.temporal.mode != "online":  # before a download and an export
        online = ", ".join(w.name for w in list_weights() if w.temporal is not None and w.temporal.mode == "online")
        raise TritonError(
            f"{spec} is {'a window (clip) model' if entry.temporal else 'an ImageNet backbone'}: the sequence batcher "
            f"serves online models, which carry a state from frame to frame; online weights: {online}"
        )
    return cached_export_of(spec), spec


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        check_model_name(args.name)
    check_output_dir(args.output, "repository", "-o")  # before a weight name's export, which takes a while
    model, name = _exported_file(args.model)
    backend = args.backend or default_backend(model)
    check_range("--idle-ms", args.idle_ms, 1, 86_400_000, note="one day at most", error=TritonError)
    try:
        options = TritonOptions(
            backend=backend, max_batch_size=args.max_batch, max_candidate_sequences=args.max_candidates,
            max_sequence_idle_us=args.idle_ms * 1000, instance_count=args.instances, threads=args.threads,
            instance_kind="KIND_CPU" if args.cpu or backend == "python" else "KIND_GPU",
            tensorrt_accelerator=args.trt_accelerator,
        )
    except TritonRangeError as exc:
        raise TritonError(out_of_range_message(f"{_FLAGS.get(exc.field, exc.field)} {exc.value}", exc.low, exc.high)) from None
    model_dir = write_triton_repository(model, args.output, name=args.name or name, options=options)
    files = ["labels.txt", f"1/{MODEL_FILES[backend]}"] + (["1/model.py"] if backend == "python" else [])
    print(f"wrote {model_dir}/config.pbtxt (+ {', '.join(files)}), backend {backend}")
    repository = args.output.resolve()
    if backend == "python":
        print(f"serve on this CPU: {SETUP_COMMAND} (once), then {default_server_dir() / LAUNCHER} --model-repository={repository}")
    else:
        print(f"serve: tritonserver --model-repository={repository}")
    return 0
