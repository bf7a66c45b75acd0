"""The value check that every config validator shares (what counts as a
number is `kd_keras.number_checks`'s).

Example:

>>> check(False, "distill.epochs", "a positive integer", -1)
Traceback (most recent call last):
...
kd_keras.errors.ConfigError: distill.epochs: must be a positive integer, got -1
"""

import math
import os

from kd_keras.errors import ConfigError


def as_float(v):
    """An integer as a float; one beyond a float's range stays as it is
    (and fails `is_finite`)."""
    try:
        return float(v)
    except OverflowError:
        return v


def is_path(value):
    """Whether `value` can name a file: a non-blank string the OS can take
    (no NUL byte, no lone surrogate).

    Example:

    >>> is_path("runs/demo"), is_path("a\\0b"), is_path(" "), is_path(3)
    (True, False, False, False)
    """
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        return False
    try:
        os.fsencode(value)
    except UnicodeError:
        return False
    return True


def check(cond, key, what, value):
    """Raises `ConfigError("KEY: must be WHAT, got VALUE")` unless `cond`.

    A number YAML read as text (`1e-3`: YAML 1.1 wants a dot, `1.0e-3`)
    gets a hint, as that is how a config usually comes to hold one.

    Example:

    >>> check(False, "distill.learning_rate", "a positive number", "1e-3")
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: distill.learning_rate: must be a positive number, got '1e-3' (YAML reads 1e-3 as text; write 1.0e-3 or 0.001)
    """
    if not cond:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ConfigError(f"{key}: must be {what}, got {shown}{_text_number_hint(value)}")


def _text_number_hint(value):
    if not isinstance(value, str) or "e" not in value.lower():
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    mantissa, _, exponent = value.lower().partition("e")
    if not math.isfinite(number) or "." in mantissa:
        return ""
    return f" (YAML reads {value} as text; write {mantissa}.0e{exponent} or {number:g})"

