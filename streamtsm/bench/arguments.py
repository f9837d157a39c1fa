"""Command-line argument types shared by the benchmarks: comma-separated lists and choices."""

from __future__ import annotations

import argparse
from typing import Callable, Collection


def comma_list(kind: type) -> Callable[[str], tuple]:
    """``"a,b"`` -> ``(kind("a"), kind("b"))``; a value ``kind`` refuses is a one-line argparse error."""
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None

    return parse


def comma_choices(known: Collection[str], what: str) -> Callable[[str], tuple[str, ...]]:
    """``"a,b"`` -> ``("a", "b")``, each one of ``known`` (the error lists them)."""
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(x.strip() for x in text.split(",") if x.strip())
        bad = [x for x in names if x not in known]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; choose from {','.join(known)}")
        return names

    return parse
