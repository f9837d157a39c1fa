"""Checks of --help texts shared by the commands' and the benchmarks' tests."""

from __future__ import annotations

import argparse
import re

DOUBLE_DEFAULT = re.compile(r"\(default: [^()]*\)\s*\(default:")


def help_problems(text: str) -> list[str]:
    """What is wrong with a --help text: a default said twice, or a default of None."""
    flat = " ".join(text.split())
    return DOUBLE_DEFAULT.findall(flat) + re.findall(r"\(default: None\)", flat)


def unsaid_defaults(parser: argparse.ArgumentParser) -> list[str]:
    """Options of ``parser`` and its subcommands that have a default their --help does not show."""
    parsers = [parser] + [p for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]
    unsaid = []
    for p in parsers:
        formatter = p._get_formatter()
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            if action.default in (None, False, [], "", argparse.SUPPRESS):
                continue
            if "default" not in (formatter._get_help_string(action) or ""):
                unsaid.append(f"{p.prog} {'/'.join(action.option_strings) or action.dest}")
    return unsaid
