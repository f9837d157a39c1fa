"""Class-name lists shipped with the package (``streamtsm/assets/labels/NAME.txt``).

A label list belongs to the weights it indexes, not to the dataset: the official TSM Jester demo
and mmaction2 order the same 27 gestures differently. Each file says in its header comment where
its order comes from. Torch-free.
"""

from __future__ import annotations

import functools
from pathlib import Path

LABELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "labels"


def label_sets() -> list[str]:
    """Names of the shipped label lists (``jester``, ``kinetics400``, ``sthv2``)."""
    return sorted(p.stem for p in LABELS_DIR.glob("*.txt"))


@functools.lru_cache(maxsize=None)
def load_labels(name: str) -> tuple[str, ...]:
    """The class names of a shipped list, in class-index order (comment lines dropped)."""
    path = LABELS_DIR / f"{name}.txt"
    if name not in label_sets():
        raise KeyError(f"no label list {name!r}; shipped lists: {', '.join(label_sets())}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line for line in lines if line and not line.startswith("#"))
