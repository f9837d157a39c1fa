"""``streamtsm export MODEL -o engines/NAME.onnx``: a checked ONNX graph with state I/O and its card."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (per-frame graph with state I/O for online TSM, clip graph for 3D CNNs)",
        description=(
            "Export a model to ONNX for torch-free deployment (ONNX Runtime, TensorRT, Triton). An online TSM "
            "becomes a per-frame graph: inputs 'frame' (N,3,H,W) and 'state_in.0…' (the cached channel fold of "
            "each shift point), outputs 'logits' and 'state_out.0…', which the runtime feeds back as the next "
            "frame's state. Window models (R(2+1)D, R3D, SlowFast) get one 'clip' input. The model card (classes, "
            "preprocessing, frame rate, state layout) is stored in the ONNX metadata. Before the file is written "
            "the graph passes the ONNX checker and ONNX Runtime must match torch to 1e-4 over several steps of "
            "random frames with carried state; otherwise nothing is written. fp16 is a TensorRT build option "
            "(`streamtsm build-engine --fp16`), not an export option."
        ),
    )
    p.add_argument(
        "model",
        help="checkpoint (.safetensors, .pth, .pth.tar), 'default' (the embedded model), or a registry name "
        "such as tsm_mobilenetv2 (RANDOM weights: for latency work only)",
    )
    p.add_argument("-o", "--output", type=Path, help="output .onnx path (default: engines/<name>.onnx)")
    p.add_argument("--batch", type=int, default=1, help="streams (online) or clips (window) per call; default 1")
    p.add_argument(
        "--dynamic-batch", action="store_true",
        help="make the batch dimension symbolic: one graph for any number of cameras (needed for Triton batching)",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17; TensorRT 10 reads 9-20)")
    p.add_argument("--check-steps", type=int, default=4, help="steps of the ONNX Runtime vs torch check (default 4)")
    p.add_argument("--num-classes", type=int, help="registry names only: number of classes (default 400)")
    p.add_argument("--input-size", type=int, help="registry names only: crop size in pixels (default: the model's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export.onnx import export_onnx
    from ..resolve import load_torch_model

    model = load_torch_model(args.model, num_classes=args.num_classes, input_size=args.input_size)
    name = "default" if args.model == "default" else Path(args.model).name.split(".")[0]
    out = args.output or Path("engines") / f"{name}.onnx"
    path = export_onnx(
        model, out, batch_size=args.batch, dynamic_batch=args.dynamic_batch, opset=args.opset,
        check_steps=args.check_steps, progress=True,
    )
    from ..contract import graph_signature

    card = getattr(model, "card")
    from ..export.onnx import card_with_state

    sig = graph_signature(card_with_state(model), args.batch)
    batch = "dynamic" if args.dynamic_batch else str(args.batch)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), {card.arch}, batch {batch}, opset {args.opset}")
    print(f"  inputs : {', '.join(f'{t.name}{list(t.shape[1:])}' for t in sig.inputs[:3])}"
          + (f" … ({len(sig.inputs) - 1} state tensors)" if len(sig.inputs) > 3 else ""))
    print(f"  outputs: {', '.join(t.name for t in sig.outputs[:3])}" + (" …" if len(sig.outputs) > 3 else ""))
    print(f"  run it : streamtsm.Recognizer({str(path)!r})   |   TensorRT: streamtsm build-engine {path} --fp16")
    return 0
