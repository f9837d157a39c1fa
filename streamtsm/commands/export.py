"""``streamtsm export MODEL -o engines/NAME.onnx``: a checked ONNX graph with state I/O and its card."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..card import MAX_CLASSES, MAX_SIDE, MIN_SIDE
from ..contract import MAX_OPSET, MIN_OPSET
from ..outputs import check_output_path
from ..resolve import check_model_file
from ..weights.registry import find_weight
from .ranges import check_range

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
            "(`streamtsm build-engine --fp16`), not an export option. --int8 adds static INT8 quantization (Q/DQ "
            "nodes, per-channel weights) calibrated on streamed frames with the state carried; the int8 graph is "
            "checked against the fp32 one over a stream and written only if they agree on top-1 often enough."
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
    p.add_argument("--opset", type=int, default=17, help=f"ONNX opset, {MIN_OPSET}-{MAX_OPSET} (default 17; TensorRT 10 reads 9-20)")
    p.add_argument("--check-steps", type=int, default=4, help="steps of the ONNX Runtime vs torch check (default 4)")
    p.add_argument("--num-classes", type=int, help="registry names only: number of classes (default 400)")
    p.add_argument("--input-size", type=int, help="registry names only: crop size in pixels (default: the model's)")
    add_int8_arguments(p)
    p.set_defaults(func=run)


def add_int8_arguments(p: argparse.ArgumentParser) -> None:
    """The --int8 flags. Their defaults and choices live in ``streamtsm.export.int8.Int8Config`` (the
    parser must not import the export side); unset flags take those, and a test checks this help
    against them."""
    g = p.add_argument_group("INT8 (static QDQ quantization of online models)")
    g.add_argument("--int8", action="store_true", help="write an int8 (QDQ) graph instead of fp32; needs --calibrate")
    g.add_argument("--calibrate", metavar="SOURCE",
                   help="calibration frames: 'synthetic' (the gesture generator's training split), a folder of "
                   "video clips, or a video file; frames are sampled to the model's frame rate")
    g.add_argument("--calib-frames", type=int, help="calibration frames, streamed with the state carried (default 300)")
    g.add_argument("--check-frames", type=int, help="frames of the int8 vs fp32 check, taken after the calibration frames (default 300)")
    g.add_argument("--min-agreement", type=float,
                   help="refuse to write below this top-1 agreement with fp32 (default 0.9; 0 writes anyway, "
                   "e.g. random weights for latency work)")
    g.add_argument("--int8-target", metavar="{cpu,tensorrt}",
                   help="cpu: ONNX Runtime (uint8 activations, 7-bit weights: no saturation on CPUs without VNNI); "
                   "tensorrt: symmetric int8 activations and weights, as TensorRT's explicit quantization needs (default cpu)")
    g.add_argument("--keep-fp32", nargs="*", metavar="GROUP",
                   help="node groups left unquantized: any of shift, classifier, first_conv, pooling (default: classifier; "
                   "give the flag alone to quantize them all)")


def int8_request(args: argparse.Namespace):
    """``(CalibrationSource, Int8Config)`` for ``--int8``, or None; bad flags fail here, before any work."""
    from ..export.int8 import CalibrationSource, Int8Config

    if not args.int8:
        given = [flag for flag, value in (("--calibrate", args.calibrate), ("--calib-frames", args.calib_frames),
                                          ("--check-frames", args.check_frames), ("--min-agreement", args.min_agreement),
                                          ("--int8-target", args.int8_target), ("--keep-fp32", args.keep_fp32))
                 if value is not None]
        if given:
            flags = " ".join(given)
            raise ValueError(f"{flags} only appl{'ies' if len(given) == 1 else 'y'} with --int8 (add --int8, or drop {flags})")
        return None
    if args.calibrate is None:
        raise ValueError("--int8 needs --calibrate SOURCE: 'synthetic', a folder of video clips, or a video file")
    given = {"target": args.int8_target, "calib_frames": args.calib_frames, "check_frames": args.check_frames,
             "min_agreement": args.min_agreement, "keep_fp32": None if args.keep_fp32 is None else tuple(args.keep_fp32)}
    config = Int8Config(**{k: v for k, v in given.items() if v is not None})
    return CalibrationSource.parse(args.calibrate), config


def check_arguments(args: argparse.Namespace, int8: bool) -> Path:
    """Refuse impossible numbers and unwritable outputs before the model is built; returns the output path."""
    for option, value, lo, hi in (
        ("--opset", args.opset, MIN_OPSET, MAX_OPSET),
        ("--num-classes", args.num_classes if args.num_classes is not None else 1, 1, MAX_CLASSES),
        ("--batch", args.batch, 1, 1024),
        ("--check-steps", args.check_steps, 1, 1000),
        ("--input-size", args.input_size if args.input_size is not None else MIN_SIDE, MIN_SIDE, MAX_SIDE),
    ):
        note = "the range torch's TorchScript exporter writes for every architecture here" if option == "--opset" else ""
        check_range(option, value, lo, hi, note=note)
    check_model_file(args.model)
    # a weight name keeps its tag (tsm_resnet50.sthv2 and .kinetics400 must not share one default file)
    name = ("default" if args.model == "default" else args.model.replace(".", "_") if find_weight(args.model)
            else Path(args.model).name.split(".")[0])
    out = args.output or Path("engines") / f"{name}{'.int8' if int8 else ''}.onnx"
    source = args.model if args.model != "default" and Path(args.model).is_file() else None
    return check_output_path(out, suffixes=(".onnx",), inputs=(source,), what="-o/--output" if args.output else "output")


def run(args: argparse.Namespace) -> int:
    int8 = int8_request(args)
    out = check_arguments(args, int8 is not None)  # before torch is imported: a typo costs a second, not three
    from ..export.onnx import export_onnx
    from ..resolve import load_torch_model

    model = load_torch_model(args.model, num_classes=args.num_classes, input_size=args.input_size)
    if int8 and not model.card.is_online:
        raise ValueError(f"--int8 quantizes online (per-frame) models; {model.card.arch} is a window (clip) model")
    export = dict(batch_size=args.batch, dynamic_batch=args.dynamic_batch, opset=args.opset, check_steps=args.check_steps, progress=True)
    if int8:
        path = export_int8(model, out, *int8, **export)
    else:
        path = export_onnx(model, out, **export)
    from ..contract import graph_signature

    card = getattr(model, "card")
    from ..export.onnx import card_with_state

    sig = graph_signature(card_with_state(model), args.batch)
    batch = "dynamic" if args.dynamic_batch else str(args.batch)
    precision = "int8 (QDQ)" if int8 else "fp32"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), {card.arch}, {precision}, batch {batch}, opset {args.opset}")
    print(f"  inputs : {', '.join(f'{t.name}{list(t.shape[1:])}' for t in sig.inputs[:3])}"
          + (f" … ({len(sig.inputs) - 1} state tensors)" if len(sig.inputs) > 3 else ""))
    print(f"  outputs: {', '.join(t.name for t in sig.outputs[:3])}" + (" …" if len(sig.outputs) > 3 else ""))
    cpu_only = int8 is not None and int8[1].target == "cpu"
    trt = "re-export with --int8-target tensorrt (this graph is for ONNX Runtime)" if cpu_only else f"streamtsm build-engine {path} --fp16"
    print(f"  run it : streamtsm.Recognizer({str(path)!r})   |   TensorRT: {trt}")
    return 0


def export_int8(model, out: Path, source, config, **export) -> Path:
    """Export fp32 to a temporary file, then quantize it into ``out`` (see :mod:`streamtsm.export.int8`)."""
    import tempfile

    from ..export.int8 import quantize_online
    from ..export.onnx import export_onnx

    with tempfile.TemporaryDirectory(prefix="streamtsm-export-") as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", **export)
        path, check = quantize_online(fp32, out, source, config, progress=True)
    print(f"int8 ({config.target}): {check.summary()}")
    return path
