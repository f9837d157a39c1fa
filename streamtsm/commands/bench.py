"""``streamtsm bench``: latency of online TSM vs 3D-CNN windows on this machine (writes JSON, Markdown, PNG).

Also what ``python benchmarks/latency.py`` runs. Results go to ``runs/bench/`` unless ``--out``
says otherwise; the folder is printed at the end. ``streamtsm.bench`` is imported inside the
functions: it counts as the torch side, and importing this module must not need it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..bench.latency import LatencyOptions



def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..bench import latency
    from ..bench.arguments import comma_list
    from ..bench.results import DEFAULT_OUT

    d = latency.LatencyOptions.__dataclass_fields__
    parser.add_argument("--models", type=comma_list(str), default=d["models"].default, metavar="A,B",
                        help=f"comma-separated (default {','.join(latency.DEFAULT_MODELS)})")
    parser.add_argument("--backends", type=comma_list(str), default=d["backends"].default, metavar="A,B",
                        help="comma-separated among torch,onnxruntime,tensorrt (default torch,onnxruntime; missing ones are skipped)")
    parser.add_argument("--strides", type=comma_list(int), default=d["strides"].default, metavar="1,4",
                        help="window strides in frames (default 1,4,8,16)")
    parser.add_argument("--rounds", type=int, default=d["rounds"].default, help="interleaved timing rounds (default %(default)s)")
    parser.add_argument("--heavy-rounds", type=int, default=d["heavy_rounds"].default,
                        help=f"rounds for {','.join(latency.HEAVY_MODELS)} (default %(default)s)")
    parser.add_argument("--online-repeats", type=int, default=d["online_repeats"].default,
                        help="online steps per round (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=d["warmup"].default, help="warm-up rounds (default %(default)s)")
    parser.add_argument("--e2e-seconds", type=float, default=d["e2e_seconds"].default,
                        help="seconds of live source per end-to-end configuration (default %(default)s; 0 skips)")
    parser.add_argument("--threads", type=int, default=d["threads"].default,
                        help="intra-op threads of every engine (default %(default)s: the engines do not fight over the cores)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: tiny inputs, one round, 1.5 s end to end; numbers meaningless, never written to benchmarks/results")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results folder (default {DEFAULT_OUT}/ here; only a deliberate full run passes benchmarks/results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace) -> "LatencyOptions":
    from ..bench import latency

    quick = bool(args.quick)
    return latency.LatencyOptions(
        models=tuple(args.models),
        backends=tuple(args.backends),
        strides=tuple(args.strides),
        rounds=args.rounds,
        heavy_rounds=args.heavy_rounds,
        online_repeats=args.online_repeats,
        warmup=args.warmup,
        e2e_seconds=min(args.e2e_seconds, 1.5) if quick else args.e2e_seconds,
        threads=args.threads,
        quick=quick,
        out=args.out,
        progress=not args.no_progress,
    )


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench import latency

    p = sub.add_parser(
        "bench",
        help="measure per-frame, per-prediction and end-to-end latency of online TSM vs 3D-CNN windows",
        description=latency.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, command: str | None = None) -> int:
    from ..bench.latency import measure_latency
    from ..bench.latency_report import render_markdown, write_report
    from ..bench.results import announce

    options = options_from_args(args)  # BenchError/OutputDirError (ValueErrors) are printed as one line by the CLI
    command = command or " ".join(["streamtsm", *map(shlex.quote, sys.argv[1:])])
    payload = measure_latency(options, command=command)
    paths = write_report(payload, options.out)
    print(render_markdown(payload))
    announce(paths)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/latency.py") -> int:
    """``python benchmarks/latency.py``: the same as ``streamtsm bench``."""
    from ..bench import latency

    parser = argparse.ArgumentParser(prog=prog, description=latency.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run(args, command=" ".join(["python", prog, *map(shlex.quote, argv)]))
