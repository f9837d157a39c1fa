"""``streamtsm models``: the weight registry as a table (or JSON), with what is already cached."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .helptext import DefaultsFormatter

_COLUMNS = ("name", "task", "classes", "input", "fps", "size", "cached", "source")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the pretrained weights you can use by name (download, cache state, source)",
        description=(
            "List the weight registry: every pretrained weight file usable by name wherever a checkpoint path is "
            "accepted (e.g. `python demo.py --model tsm_mobilenetv2.jester_online`). 'cached' says whether the file "
            "is already in $STREAMTSM_HOME/weights (default ~/.cache/streamtsm/weights); `streamtsm download NAME` "
            "fetches it. ImageNet backbones only initialise training (`streamtsm train DATA --init NAME --arch ARCH`)."
        ),
        formatter_class=DefaultsFormatter,
    )
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter on names, e.g. 'tsm_*'")
    p.add_argument("--json", action="store_true", help="print JSON (all entry fields and the cached path) instead of a table")
    p.set_defaults(func=run)


def rows(pattern: str = "*") -> list[dict[str, Any]]:
    """One dict per entry: the entry's summary plus ``cached`` (path or None) and ``size`` (MB) for the table."""
    from ..weights import cached_file, list_weights

    out = []
    for entry in list_weights(pattern):
        row = entry.summary()
        path = cached_file(entry.name)
        row["cached"] = str(path) if path else None
        if path is not None:
            row["size_mb"] = round(path.stat().st_size / 1e6, 3)
        out.append(row)
    return out


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "classes":
        return "backbone" if row["classes"] is None else str(row["classes"])
    if column == "fps":
        fps = row["fps"]
        return "—" if fps is None else f"{fps:g}" + ("*" if "fps" in row["unverified"] else "")
    if column == "size":
        return "?" if row["size_mb"] is None else f"{row['size_mb']:.0f} MB"
    if column == "cached":
        return "yes" if row["cached"] else "no"
    return str(row[column])


def run(args: argparse.Namespace) -> int:
    table = rows(args.pattern)
    if not table:
        from ..weights import list_weights

        names = ", ".join(e.name for e in list_weights())
        raise ValueError(f"no weight name matches {args.pattern!r}; names: {names}")
    if args.json:
        print(json.dumps(table, indent=2, ensure_ascii=False))
        return 0
    cells = [[_cell(r, c) for c in _COLUMNS] for r in table]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(_COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    if any("fps" in r["unverified"] for r in table):
        print("* uniform (TSN) sampling over the whole video: the fps is an approximation for live use")
    return 0
