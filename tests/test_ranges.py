"""One rule and one message for a number out of range, in every command (streamtsm.commands.ranges)."""

from __future__ import annotations

import argparse

import pytest

from streamtsm.commands.ranges import allowed, check_range, number

pytestmark = pytest.mark.runtime


@pytest.mark.parametrize("low, high, low_open, words", [
    (1, 16, False, "a value from 1 to 16"),
    (0.4, 1.0, False, "a value from 0.4 to 1"),
    (1, None, False, "a value of at least 1"),
    (0, None, True, "a value above 0"),
    (0, 1000, True, "a value above 0 and at most 1000"),
    (None, 5, False, "a value at most 5"),
    (1, 2**64 - 1, False, "a value from 1 to 18446744073709551615"),  # ints in full, not 1.8e+19
])
def test_allowed_says_the_range_in_words(low, high, low_open, words):
    assert allowed(low, high, low_open=low_open) == words


@pytest.mark.parametrize("value, low, high, low_open, ok", [
    (1, 1, 16, False, True), (16, 1, 16, False, True), (0, 1, 16, False, False), (17, 1, 16, False, False),
    (0.0, 0, None, True, False), (1e-9, 0, None, True, True),
    (float("nan"), 0.4, 1.0, False, False), (float("inf"), 0, None, True, False), (float("-inf"), None, 5, False, False),
    (10**400, 1, None, False, True), (10**400, 1, 2**64 - 1, False, False),  # no float overflow on huge ints
])
def test_check_range_refuses_exactly_what_is_outside(value, low, high, low_open, ok):
    if ok:
        check_range("--x", value, low, high, low_open=low_open)
    else:
        with pytest.raises(ValueError, match=r"^--x \S+ is out of range: use a value "):
            check_range("--x", value, low, high, low_open=low_open)


def test_check_range_raises_the_callers_error_with_its_note():
    class DemoError(RuntimeError):
        pass

    with pytest.raises(DemoError) as info:
        check_range("--start-threshold", 0.3, 0.4, 1.0, note="0.4 is the end threshold", error=DemoError)
    assert str(info.value) == "--start-threshold 0.3 is out of range: use a value from 0.4 to 1 (0.4 is the end threshold)"


@pytest.mark.parametrize("kind, text, message", [
    (int, "0", "0 is out of range: use a value from 1 to 64"),
    (int, "1.5", "'1.5' is not an integer"),
    (float, "nan", "nan is out of range: use a value from 1 to 64"),
    (float, "abc", "'abc' is not a number"),
])
def test_number_is_an_argparse_type_with_the_same_message(kind, text, message):
    parse = number(kind, 1, 64)
    with pytest.raises(argparse.ArgumentTypeError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        parse(text)
    assert parse("64") == 64 and type(parse("8")) is kind
