"""Every command's --help states each default once, and only where there is one.

argparse's ArgumentDefaultsHelpFormatter had made ``--timeout`` read ``(default:
$STREAMTSM_DOWNLOAD_TIMEOUT or 30) (default: None)``; the benchmarks' scripts are checked in
test_benchmarks_smoke.py (they need torch), with the same checks (tests/help_checks.py).
"""

from __future__ import annotations

import argparse

import pytest
from help_checks import help_problems, unsaid_defaults

from streamtsm.cli import build_parser
from streamtsm.commands.helptext import DefaultsFormatter

pytestmark = pytest.mark.runtime


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBCOMMANDS = sorted(_subparsers())


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_default_is_said_once_and_never_as_none(command):
    assert help_problems(_subparsers()[command].format_help()) == []


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_option_with_a_default_says_it(command):
    assert unsaid_defaults(_subparsers()[command]) == []


@pytest.mark.parametrize("default, help_text, shown", [
    (30, "seconds to wait", "seconds to wait (default: 30)"),
    (None, "seconds to wait (default: $T or 30)", "seconds to wait (default: $T or 30)"),
    (None, "output folder", "output folder"),
    (False, "no progress bar", "no progress bar"),
    ("", "a prefix", "a prefix"),
    ([], "paths", "paths"),
    (0, "retries", "retries (default: 0)"),  # zero is a default worth showing, unlike None
    ("auto", "backend", "backend (default: auto)"),
])
def test_the_formatter_shows_a_default_only_where_it_says_something(default, help_text, shown):
    parser = argparse.ArgumentParser(prog="p", formatter_class=DefaultsFormatter)
    parser.add_argument("--x", default=default, help=help_text)
    text = " ".join(parser.format_help().split())
    assert f"--x X {shown}" in text
    assert help_problems(parser.format_help()) == []


def test_the_check_finds_what_it_is_for():
    assert help_problems("--out OUT  output folder (default: runs/x)\n   (default: None)")
    assert help_problems("--n N  (default: None)")
    assert not help_problems("--n N  how many (default: 3)\n  --m M  (default: 4)")


def test_an_option_with_an_unshown_default_is_found():
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--crop", type=int, default=224, help="px (default: %(default)s)")
    assert unsaid_defaults(parser) == ["p --frames"]
