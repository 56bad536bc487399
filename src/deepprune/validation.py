"""Checks of single run settings that name the key: entry modules call them before any model, engine or file loads.

Each check takes the dotted key as the user writes it on the command line, the value, and the allowed range; it
returns the value in its proper type or raises ``ValueError`` saying ``key=value`` and what is allowed::

    n = check_int_at_least("n", cfg.n, 1)     # n=0 -> "n=0 is invalid: `n` must be an integer >= 1"
    tau = check_probability("tau", cfg.tau)   # tau=abc -> "tau='abc' is invalid: `tau` must be a number in [0, 1]"
    limit = check_int_at_least("max_problems", cfg.max_problems, 1, allow_none=True)

Python's own conversions are not enough: ``int(-1)`` is a valid slice bound (``problems[:-1]`` drops the last
problem), ``float("abc")`` fails without the key, and a boolean is an integer.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, Literal, overload

__all__ = ["check_choice", "check_int_at_least", "check_number_in", "check_probability"]


def _shown(value: Any) -> str:
    """A value as written on the command line: strings quoted, ``None`` as ``null``."""
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _invalid(key: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{key}={_shown(value)} is invalid: `{key}` must be {expected}")


@overload
def check_int_at_least(key: str, value: Any, minimum: int, allow_none: Literal[False] = False) -> int: ...
@overload
def check_int_at_least(key: str, value: Any, minimum: int, allow_none: bool) -> int | None: ...


def check_int_at_least(key: str, value: Any, minimum: int, allow_none: bool = False) -> int | None:
    """``value`` as an int ``>= minimum`` (``None`` passes when ``allow_none``, e.g. "no limit")."""
    expected = f"an integer >= {minimum}" + (" or null" if allow_none else "")
    if value is None:
        if allow_none:
            return None
        raise _invalid(key, value, expected)
    if isinstance(value, bool):
        raise _invalid(key, value, expected)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise _invalid(key, value, expected)
    return value


def check_number_in(key: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in the closed interval ``[low, high]`` (NaN, strings and booleans are refused)."""
    expected = f"in [{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(key, value, "a number " + expected)
    number = float(value)
    if math.isnan(number) or not low <= number <= high:
        raise _invalid(key, value, expected)
    return number


def check_probability(key: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]``."""
    return check_number_in(key, value, 0.0, 1.0)


def check_choice(key: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise _invalid(key, value, "one of " + ", ".join(_shown(c) for c in choices))
    return value
