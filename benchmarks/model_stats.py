"""Parameter counts and GFLOPs per clip of the 3D-CNN baselines, next to the published figures.

Models are built by ``streamtsm.resolve`` from their registry names on torch's ``meta`` device,
so nothing is allocated or computed: the FLOP counter only reads shapes and this runs in
seconds on any machine. GFLOPs follow the
convention of torchvision's and mmaction2's model tables: multiply-accumulates × 1e-9 of the
convolutions and linear layers (BN, ReLU and pooling are not counted).

    python benchmarks/model_stats.py                          # prints the table, writes runs/bench/model_stats.md
    python benchmarks/model_stats.py --out benchmarks/results # deliberate run
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.results import DEFAULT_OUT, announce, output_dir, write_text  # noqa: E402
from streamtsm.resolve import load_torch_model  # noqa: E402


@dataclass(frozen=True)
class Row:
    arch: str
    num_classes: int
    clip: tuple[int, int]  # (frames, crop) of the model card: what one prediction costs here
    published_clip: tuple[int, int]  # (frames, crop) the published figure was measured at
    published: str  # "params, GFLOPs (source)" or "—"


# mmaction2's metafile FLOPs are measured at 256x256 (its ThreeCrop test size), not the 224 centre crop.
ROWS = (
    Row("r2plus1d_18", 400, (16, 112), (16, 112), "31.5M, 40.5 (torchvision)"),
    Row("r2plus1d_34", 400, (16, 112), (16, 112), "—"),
    Row("r3d_18", 400, (16, 112), (16, 112), "33.4M, 40.7 (torchvision)"),
    Row("r2plus1d_seed", 101, (16, 112), (16, 112), "— (seed gives no figures)"),
    Row("i3d_r50", 400, (32, 224), (32, 256), "28.0M, 43.5 (mmaction2 metafile)"),
    Row("slowonly_r50", 400, (8, 224), (8, 256), "32.45M, 54.75 (mmaction2 metafile, 8x8)"),
    Row("slowfast_r50", 400, (32, 224), (32, 256), "34.5M, 36.3 (mmaction2 metafile, 4x16)"),
)


def measure(arch: str, num_classes: int, frames: int, crop: int) -> tuple[float, float]:
    """(parameters in millions, GMACs per clip) of one model for a (1, 3, frames, crop, crop) clip."""
    with torch.device("meta"):
        model = load_torch_model(arch, num_classes=num_classes).eval()
        clip = torch.empty(1, 3, frames, crop, crop)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(clip)
    params = sum(p.numel() for p in model.parameters())
    return params / 1e6, counter.get_total_flops() / 2 / 1e9  # FlopCounterMode counts 2 FLOPs per MAC


def _clip(c: tuple[int, int]) -> str:
    return f"{c[0]}×{c[1]}²"


def table() -> str:
    lines = [
        "| model | card clip | params (M) | GFLOPs at card clip | GFLOPs at published clip | published (params, GFLOPs) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in ROWS:
        params, gmacs = measure(row.arch, row.num_classes, *row.clip)
        _, gmacs_pub = measure(row.arch, row.num_classes, *row.published_clip)
        lines.append(
            f"| {row.arch} | {_clip(row.clip)} | {params:.2f} | {gmacs:.2f} | {gmacs_pub:.2f} ({_clip(row.published_clip)}) | {row.published} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/model_stats.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help=f"folder for model_stats.md (default {DEFAULT_OUT}/)")
    args = parser.parse_args(argv)
    try:
        out = output_dir(args.out, quick=False)
    except ValueError as exc:
        parser.error(str(exc))
    text = table()
    print(text)
    announce([write_text(out / "model_stats.md", "# Parameters and GFLOPs of the 3D-CNN baselines\n\n" + text + "\n")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
