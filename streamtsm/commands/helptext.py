"""The help formatter every command and benchmark uses: defaults shown once, only where they say something.

argparse's ``ArgumentDefaultsHelpFormatter`` appends ``(default: X)`` to every option, so an
option whose help already explains its default (``default: $STREAMTSM_DOWNLOAD_TIMEOUT or
30``) read ``(default: ...) (default: None)``, and an option with no default at all claimed
``None``.
"""

from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only for options with a default worth showing (not None/False/empty)
    whose help does not already speak of its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if "default" in text or d is None or d is False or d == [] or d == "" or d is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


class RawDescriptionDefaultsFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`DefaultsFormatter` for a parser whose description is a docstring laid out by hand
    (the benchmarks' usage examples keep their lines)."""
