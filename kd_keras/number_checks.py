"""What counts as a number in kd_keras's options: one answer everywhere.

The config validators, the Distiller's schedules, the students' builders,
the cache and the data readers all take counts and rates from users, in
YAML (Python `int` and `float`) or from code (NumPy scalars too). A bool is
never a number here, though Python counts `True` as 1: `epochs: true` is a
mistake, not one epoch.

Example:

>>> import numpy as np
>>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
(True, True, False, False)
>>> is_real(np.float32(0.5)), is_real("0.5"), is_real(False)
(True, False, False)
>>> is_finite(1e308), is_finite(float("nan")), is_finite(10**400)
(True, False, False)
"""

import math
import numbers


def is_int(value):
    """An integer, Python's or NumPy's, not a bool.

    Args:
        value: anything.

    Returns:
        True for `int` and NumPy integer scalars other than bools.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A real number, Python's or NumPy's, not a bool (NaN and infinities
    included: `is_finite` leaves them out).

    Args:
        value: anything.

    Returns:
        True for ints, floats and NumPy real scalars other than bools.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_finite(value):
    """A real number that is neither NaN nor infinite, nor an integer too
    large for a float.

    Args:
        value: anything.

    Returns:
        True for a finite `is_real` value.
    """
    if not is_real(value):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False
