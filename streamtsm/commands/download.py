"""``streamtsm download NAME...``: fetch weights into the cache now (prefetch for an offline device)."""

from __future__ import annotations

import argparse

from .helptext import DefaultsFormatter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download pretrained weights by name into the cache (to prefetch for an offline device)",
        description=(
            "Download weight files by name (see `streamtsm models`) into $STREAMTSM_HOME/weights (default "
            "~/.cache/streamtsm/weights) and check them: published checksums are verified; files without one are "
            "loaded strictly once and their SHA-256 recorded. Copy that folder to an offline device and set "
            "STREAMTSM_OFFLINE=1 there. STREAMTSM_MIRROR=http://host:port[/prefix] fetches from a site mirror "
            "that keeps the files under their original paths. Interrupted downloads resume."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("names", nargs="+", metavar="NAME", help="weight names, e.g. tsm_mobilenetv2.jester_online")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for the connection and for each read (default: $STREAMTSM_DOWNLOAD_TIMEOUT or 30)")
    p.add_argument("--retries", type=int, default=None,
                   help="further attempts after a failed one (default: $STREAMTSM_DOWNLOAD_RETRIES or 3)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (it is also off when stderr is not a terminal)")
    p.add_argument("--onnx", action="store_true",
                   help="also export each video model into the export cache ($STREAMTSM_HOME/exports; needs torch), so a "
                   "device with only onnxruntime finds it by name (copy the whole $STREAMTSM_HOME)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..weights import download, get_weight

    entries = [get_weight(n) for n in args.names]  # every name checked before the first byte is fetched
    if args.onnx and (backbones := [e.name for e in entries if e.is_backbone]):
        raise ValueError(f"--onnx exports video models; {', '.join(backbones)} are ImageNet backbones (for `train --init`)")
    for entry in entries:
        path = download(entry.name, progress=False if args.quiet else None, timeout=args.timeout, retries=args.retries)
        print(f"{entry.name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
        if args.onnx:
            from ..resolve import cached_export_of

            print(f"{entry.name}: export {cached_export_of(entry.name)}")
    return 0
