"""What the temporal shift costs per frame: online TSM step vs the same network without shift.

Both variants are the same MobileNetV2 weights on single 224x224 frames in torch (CPU):
``online``  — OnlineTSM.forward(frame, *state) (slices + cat at 10 shift points, state out),
``no_shift`` — the plain per-frame forward (TSN, no state).
Timed interleaved in one run; the ratio of medians is the shift's overhead. The model is a
registry name with random weights, built by ``streamtsm.resolve``.

    python benchmarks/shift_overhead.py --rounds 300 --out benchmarks/results   # deliberate run (into runs/bench/ without --out)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.machine import environment  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, markdown_table, output_dir, write_results  # noqa: E402
from streamtsm.bench.timing import time_interleaved  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per variant (default 300)")
    parser.add_argument("--size", type=int, default=224, help="frame side in pixels (default 224)")
    parser.add_argument("--arch", default="tsm_mobilenetv2", help="TSM architecture (default tsm_mobilenetv2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default {DEFAULT_OUT}/; only a deliberate full run passes benchmarks/results)")
    args = parser.parse_args(argv)
    try:
        out = output_dir(args.out, quick=False)
    except ValueError as exc:
        parser.error(str(exc))

    import torch

    from streamtsm.models import to_online
    from streamtsm.resolve import load_torch_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_torch_model(args.arch, num_classes=27, input_size=args.size).eval()
    online = to_online(model)
    state = online.init_state(1, args.size, args.size)
    frame = torch.randn(1, 3, args.size, args.size)

    def step_online():
        with torch.inference_mode():
            return online(frame, *state)

    def step_plain():
        with torch.inference_mode():
            return model.forward_frame_head(_plain_blocks(model, model.forward_stem(frame)))

    timings = time_interleaved({"online_tsm": step_online, "no_shift": step_plain}, rounds=args.rounds)
    ratio = timings["online_tsm"].median_ms / timings["no_shift"].median_ms
    rows = [dict(variant=t.name, median_ms=t.median_ms, p90_ms=t.p90_ms, p99_ms=t.p99_ms, n=t.n) for t in timings.values()]
    env = environment(arch=args.arch, frame=f"1x3x{args.size}x{args.size}", rounds=args.rounds)
    md = (
        f"# Shift overhead ({args.arch}, torch CPU, {args.size}x{args.size}, batch 1)\n\n"
        + markdown_table(rows, ["variant", "median_ms", "p90_ms", "p99_ms", "n"])
        + f"\n\nonline / no-shift median ratio: **{ratio:.3f}** (overhead {100 * (ratio - 1):+.1f}%)\n\n"
        + f"Measured interleaved in one run on {env['processor']} ({env['cpu_count']} cores, load {env['load_average_1min']:.2f}), "
        + f"torch {env.get('torch')} with {env.get('torch_threads')} threads, {env['date_utc']}.\n"
        + f"Command: `python benchmarks/shift_overhead.py --rounds {args.rounds} --size {args.size}`\n"
    )
    paths = write_results("shift_overhead", {"environment": env, "timings": timings, "ratio": ratio}, md, out)
    print(md)
    announce(paths)
    return 0


def _plain_blocks(model, x):
    for block in model.blocks():
        x = block(x)
    return x


if __name__ == "__main__":
    sys.exit(main())
