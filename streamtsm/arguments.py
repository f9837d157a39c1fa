"""Numbers given to the API: one rule for "a whole number" and "a real number", and one message.

``True`` is an ``int`` to Python and ``"1.0"`` converts with ``float()``; neither is a frame
index, a thread count or a timestamp. The runtime's checks (postprocessing options, sampling
rates, windows, push arguments, engine threads) all use these, so they agree on what passes and
word a refusal the same way: ``top_k must be a whole number from 1 to 1000, got 2.5``.
Standard library only.
"""

from __future__ import annotations

import math
import numbers


def is_whole_number(value: object) -> bool:
    """An integral number (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real_number(value: object) -> bool:
    """A finite real number (numpy's too), not a bool, a string or an array."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_whole(name: str, value: object, low: int, high: int, error: type[Exception], *, unit: str = "",
                none: str | None = None) -> int | None:
    """``value`` as an int in ``[low, high]``; None passes when ``none`` says what None means."""
    if value is None and none is not None:
        return None
    if not is_whole_number(value) or not low <= value <= high:  # type: ignore[operator]
        unit_text = f" {unit}" if unit else ""
        none_text = f" (or None for {none})" if none is not None else ""
        raise error(f"{name} must be a whole number{unit_text} from {low} to {high}{none_text}, got {value!r}")
    return int(value)  # type: ignore[call-overload]


def check_real(name: str, value: object, low: float, high: float, error: type[Exception]) -> float:
    """``value`` as a float in ``[low, high]`` (NaN and infinities are not)."""
    if not is_real_number(value) or not low <= value <= high:  # type: ignore[operator]
        raise error(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)  # type: ignore[arg-type]
