"""``streamtsm bench``: latency of online TSM vs 3D-CNN windows on this machine (writes JSON, Markdown, PNG)."""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench.latency import __doc__ as doc

    p = sub.add_parser(
        "bench",
        help="measure per-frame, per-prediction and end-to-end latency of online TSM vs 3D-CNN windows",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ..bench.latency import add_arguments

    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench.latency import options_from_args, render_markdown, run_latency

    options = options_from_args(args)  # BenchError (a ValueError) is printed as one line by the CLI
    command = " ".join(["streamtsm", *map(shlex.quote, sys.argv[1:])])
    payload = run_latency(options, command=command)
    print(render_markdown(payload))
    return 0
