"""Numbers on the command line: one rule and one message for "out of range", in every command.

Every command says a bad number the same way -- ``--lanes 0 is out of range: use a value from
1 to 16`` -- whether argparse checks it while parsing (:func:`number`, a ``type=``) or the
command checks it afterwards (:func:`check_range`, for numbers whose limits depend on other
arguments or that must be refused with the command's own error). NaN and infinities are always
out of range. Standard library only: these run before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable


def _show(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def allowed(low: float | None, high: float | None, *, low_open: bool = False) -> str:
    """The allowed range in words: ``a value from 1 to 16``, ``a value above 0``, ``a value of at least 1``."""
    if low is not None and high is not None and not low_open:
        return f"a value from {_show(low)} to {_show(high)}"
    parts = []
    if low is not None:
        parts.append(f"above {_show(low)}" if low_open else f"of at least {_show(low)}")
    if high is not None:
        parts.append(f"at most {_show(high)}")
    return "a value " + " and ".join(parts) if parts else "a finite value"


def in_range(value: float, low: float | None, high: float | None, *, low_open: bool = False) -> bool:
    """``value`` is finite and within ``[low, high]`` (``low_open``: strictly above ``low``)."""
    if not isinstance(value, int) and not math.isfinite(value):  # (an int of 400 digits would overflow a float)
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value <= high


def out_of_range_message(shown: str, low: float | None, high: float | None, *, low_open: bool = False,
                         note: str = "") -> str:
    """``<shown> is out of range: use <allowed>[ (<note>)]``."""
    return f"{shown} is out of range: use {allowed(low, high, low_open=low_open)}" + (f" ({note})" if note else "")


def check_range(option: str, value: float, low: float | None, high: float | None, *, low_open: bool = False,
                note: str = "", error: type[Exception] = ValueError) -> None:
    """Raise ``error("--option value is out of range: use ...")`` unless ``value`` is in range."""
    if not in_range(value, low, high, low_open=low_open):
        raise error(out_of_range_message(f"{option} {_show(value)}", low, high, low_open=low_open, note=note))


def number(kind: type, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           note: str = "") -> Callable[[str], float]:
    """An argparse ``type=``: a ``kind`` (int or float) in range, else argparse's usage error with the range."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not in_range(value, low, high, low_open=low_open):
            raise argparse.ArgumentTypeError(out_of_range_message(text, low, high, low_open=low_open, note=note))
        return value

    return parse
