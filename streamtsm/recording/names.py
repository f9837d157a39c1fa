"""Class names a recording may use: each one becomes a folder inside OUT_DIR, and nothing else.

A name is a folder name and a token of mmaction2's ``path label`` lines, so it must not hold a
path separator, whitespace or a leading dot, and must not mean something else to a file system
(``..``, Windows device names). Names that differ only in case are refused too: on macOS and
Windows they are the same folder.
"""

from __future__ import annotations

import re
from typing import Sequence


class ClassNameError(ValueError):
    """A class name or list cannot be used; the message names it and says what is allowed."""


MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[^\W_][\w-]*")  # letters/digits first, then letters, digits, '_' and '-'
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
ALLOWED = "letters, digits, '_' and '-', starting with a letter or digit, at most 64 characters (e.g. wave, circle_cw)"


def check_class_name(name: str, what: str = "class name") -> str:
    """``name`` if it is safe as a folder of its own inside the recording folder, else ClassNameError."""
    if not isinstance(name, str) or not name:
        raise ClassNameError(f"{what} is empty: use {ALLOWED}")
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name) or name.lower() in _WINDOWS_DEVICES:
        raise ClassNameError(f"{what} {name!r} cannot be a folder name: use {ALLOWED}")
    return name


def parse_class_list(text: str, what: str = "--classes") -> tuple[str, ...]:
    """``"wave,circle_cw"`` -> ``("wave", "circle_cw")``: every name checked, no repeats."""
    if not isinstance(text, str) or not text.strip():
        raise ClassNameError(f"{what} is empty: give comma-separated class names, e.g. {what} wave,circle_cw")
    names = tuple(part.strip() for part in text.split(","))
    for position, name in enumerate(names, start=1):
        if not name:
            raise ClassNameError(f"{what} {text!r}: name {position} is empty (two commas in a row, or a trailing comma?)")
        check_class_name(name, f"{what} name")
    check_unique(names, what)
    return names


def check_unique(names: Sequence[str], what: str) -> None:
    """No name twice, not even in another case (one folder on case-insensitive file systems)."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.get(name.lower())
        if other is not None:
            same = "twice" if other == name else f"as {other!r} and {name!r} (the same folder on macOS/Windows)"
            raise ClassNameError(f"{what} names the class {name!r} {same}: each class once")
        seen[name.lower()] = name
