"""The value checks that every config validator shares.

Example:

>>> is_number(3), is_number(True), is_number(float("inf")), is_number(10**400)
(True, False, False, False)
>>> check(False, "distill.epochs", "a non-negative integer", -1)
Traceback (most recent call last):
...
kd_keras.errors.ConfigError: distill.epochs: must be a non-negative integer, got -1
"""

import math

from kd_keras.errors import ConfigError


def is_int(v):
    """An integer, not a boolean."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    """A finite int or float (not a boolean, nor an integer beyond a
    float's range)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def as_float(v):
    """An integer as a float; one beyond a float's range stays as it is
    (and fails `is_number`)."""
    try:
        return float(v)
    except OverflowError:
        return v


def check(cond, key, what, value):
    """Raises `ConfigError("KEY: must be WHAT, got VALUE")` unless `cond`."""
    if not cond:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ConfigError(f"{key}: must be {what}, got {shown}")


__all__ = ["as_float", "check", "is_int", "is_number"]
