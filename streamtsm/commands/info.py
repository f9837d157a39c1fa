"""``streamtsm info PATH``: what a checkpoint, ONNX graph or TensorRT engine is, before you run it.

``.onnx`` and ``.plan`` files are described without torch (see :mod:`streamtsm.describe`), so
the command works on a device that only runs exported models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show what a checkpoint, .onnx or .plan file is (architecture, classes, input size, I/O, engine)",
        description=(
            "Describe a model file. Checkpoints: format, architecture, class count and names, shift mode (uni = runs "
            "online, bi = offline only), input size, frame rate, parameters and the number of online state tensors. "
            ".onnx exports (no torch needed): the card in the file, inputs and outputs with shapes, opset, dynamic "
            "batch, precision and calibration, file size. .plan TensorRT engines: the same from the engine's sidecar, "
            "plus the TensorRT version, GPU, engine precision and the SHA-256 of the ONNX file it was built from "
            "(no GPU needed). Without PATH, describes the embedded default model."
        ),
    )
    p.add_argument("path", nargs="?", help="checkpoint (.safetensors, .pth, .pth.tar), .onnx or .plan, or a weight name "
                   "(`streamtsm models`); default (or 'default'): the embedded model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (with the full card for .onnx/.plan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = None if args.path == "default" else args.path  # 'default' names the embedded model, as elsewhere
    suffix = Path(path).suffix.lower() if path else ""
    if suffix in (".onnx", ".plan", ".engine"):  # .engine: a TensorRT engine, as the resolver reads it
        from ..describe import describe_onnx, describe_plan

        info = describe_onnx(path) if suffix == ".onnx" else describe_plan(path)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            _print_table({k: v for k, v in info.items() if k != "card"})
        return 0
    from ..weights import find_weight, near_miss_message

    if path is not None and not Path(path).exists() and find_weight(path) is None:  # before torch is imported
        raise FileNotFoundError(near_miss_message(path) or f"checkpoint {path} does not exist: give a checkpoint, .onnx "
                                "or .plan file, 'default', or a weight name (`streamtsm models`)")
    if path is not None and Path(path).is_file():
        from ..describe import check_checkpoint_file

        check_checkpoint_file(path)  # a JPEG or a text file says so, with or without torch
    try:
        from ..checkpoints.loader import card_json, card_summary, inspect_checkpoint
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        raise RuntimeError(f"describing the checkpoint {path or 'of the default model'} needs torch: install "
                           "streamtsm[torch], or run `streamtsm info` on its .onnx export (no torch needed)") from None

    from ..train.outputs import is_resume_state, resume_state_message

    if path is not None and is_resume_state(path):  # eval and train --init say the same
        raise ValueError(resume_state_message(path, "info:"))
    checkpoint = inspect_checkpoint(path)
    if args.json:
        print(card_json(checkpoint))
        return 0
    _print_table(card_summary(checkpoint))
    return 0


def _print_table(info: dict[str, Any]) -> None:
    for key, value in info.items():
        if key == "parameters":
            value = f"{value:,} ({value / 1e6:.2f} M)"
        elif key == "file_size_bytes":
            key, value = "file_size", f"{value / 1e6:.2f} MB ({value:,} bytes)"
        elif key in ("inputs", "outputs"):
            value = "\n".join(f"{'':>16}{t['name']} {t['shape']} {t['dtype']}" for t in value).lstrip()
        elif key == "calibration" and not value:
            value = "none"
        print(f"{key:>14}: {value}")
