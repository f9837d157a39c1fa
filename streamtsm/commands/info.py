"""``streamtsm info PATH``: what a checkpoint is, before you run it."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="show what a checkpoint is (format, architecture, classes, shift mode, input size, parameters)",
        description=(
            "Detect a checkpoint's format and print what it contains: format, architecture, class count and "
            "names, shift mode (uni = runs online, bi = offline only), input size, frame rate, parameters and the "
            "number of online state tensors. Without PATH, describes the embedded default model."
        ),
    )
    p.add_argument("path", nargs="?", help="checkpoint (.safetensors, .pth, .pth.tar); default: embedded model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoints.loader import card_json, card_summary, inspect_checkpoint

    info = inspect_checkpoint(args.path)
    if args.json:
        print(card_json(info))
        return 0
    for key, value in card_summary(info).items():
        if key == "parameters":
            value = f"{value:,} ({value / 1e6:.2f} M)"
        print(f"{key:>14}: {value}")
    return 0
