"""Pieces shared by the built-in students: the id input, the name of the
feature layer and the checks of builder arguments.

A bad argument stops the builder with a one-line `ConfigError` that names
it the way the config does: `student.options.<argument>` for the builder's
own options, `student.sequence_length`, `student.num_classes` and
`student.vocab_size` for the three arguments every builder takes.

Example:

>>> check_int("embedding_dim", 64)
64
>>> try:
...     check_int("embedding_dim", -3)
... except ValueError as e:
...     print(e)
student.options.embedding_dim: must be a positive integer, got -3
"""

import functools
import numbers

import keras

from kd_keras.errors import ConfigError
from kd_keras.number_checks import is_int
from kd_keras.number_checks import is_real

FEATURES_LAYER = "features"
"""Name of the layer whose output is a student's pooled representation, the
input of its classifier (before dropout); a feature-distillation term names
it as `student_layer`."""

_SHARED_ARGUMENTS = ("num_classes", "vocab_size", "sequence_length")


def option_key(argument):
    """The config key that names a builder argument in error messages.

    Example:

    >>> option_key("filters"), option_key("sequence_length")
    ('student.options.filters', 'student.sequence_length')
    """
    if argument in _SHARED_ARGUMENTS:
        return f"student.{argument}"
    return f"student.options.{argument}"


def plain_numbers(builder):
    """Decorates a student builder so that NumPy numbers among its
    arguments (`np.int64(64)`, from an array or a sweep) reach it, and
    Keras, as Python `int` and `float`, lists of them included.

    Example:

    >>> import numpy as np
    >>> plain_numbers(lambda units, sizes: (type(units), sizes))(np.int64(3), (np.int32(2),))
    (<class 'int'>, (2,))
    """
    def plain(value):
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
            return int(value)
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
            return float(value)
        if isinstance(value, (list, tuple)):
            return type(value)(plain(v) for v in value)
        return value

    @functools.wraps(builder)
    def build(*args, **kwargs):
        return builder(*map(plain, args), **{k: plain(v) for k, v in kwargs.items()})

    return build


def _fail(argument, expected, value):
    raise ConfigError(f"{option_key(argument)}: must be {expected}, got {value!r}")


def check_int(argument, value, minimum=1):
    """Returns `value` as an int if it is an integer `>= minimum`.

    Raises:
        ConfigError: naming the argument, otherwise.
    """
    if not is_int(value) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        _fail(argument, expected, value)
    return int(value)


def check_ints(argument, value, minimum=1, allow_empty=False):
    """Returns `value` as a tuple of ints if it is a list of integers
    `>= minimum` (non-empty unless `allow_empty`).

    Raises:
        ConfigError: naming the argument, otherwise.

    Example:

    >>> check_ints("kernel_sizes", [3, 4])
    (3, 4)
    """
    noun = "a list of positive integers" if minimum == 1 else f"a list of integers >= {minimum}"
    if not allow_empty:
        noun = "a non-empty " + noun[2:]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        _fail(argument, noun, value)
    items = tuple(value)
    if (not items and not allow_empty) or not all(is_int(v) and v >= minimum for v in items):
        _fail(argument, noun, value)
    return tuple(int(v) for v in items)


def check_rate(argument, value):
    """Returns `value` as a float if it is a number in `[0, 1)` (a dropout
    rate).

    Raises:
        ConfigError: naming the argument, otherwise.
    """
    if not is_real(value) or not 0 <= value < 1:
        _fail(argument, "a number in [0, 1)", value)
    return float(value)


def check_text_arguments(num_classes, vocab_size, sequence_length):
    """Checks the three arguments of every text student.

    Raises:
        ConfigError: naming the first bad argument.
    """
    check_int("num_classes", num_classes)
    check_int("vocab_size", vocab_size)
    check_int("sequence_length", sequence_length)


def check_cnn_arguments(num_classes, vocab_size, sequence_length, embedding_dim,
                        filters, kernel_sizes):
    """Checks the arguments the convolutional text students share (their
    `dropout` comes last, after each builder's own checks).

    Returns:
        `kernel_sizes` as a tuple of ints.

    Raises:
        ConfigError: naming the first bad argument.

    Example:

    >>> check_cnn_arguments(2, 100, 8, 16, 10, [3, 4])
    (3, 4)
    """
    check_text_arguments(num_classes, vocab_size, sequence_length)
    check_int("embedding_dim", embedding_dim)
    check_int("filters", filters)
    kernel_sizes = check_ints("kernel_sizes", kernel_sizes)
    if len(set(kernel_sizes)) != len(kernel_sizes):  # Their layers are named by width.
        raise ConfigError(f"{option_key('kernel_sizes')}: must not repeat a width, "
                          f"got {list(kernel_sizes)}")
    return kernel_sizes


def token_ids_input(sequence_length, name="token_ids"):
    """The int32 `[batch, sequence_length]` WordPiece-id input of text students.

    Example:

    >>> x = token_ids_input(48)
    >>> tuple(x.shape), x.dtype
    ((None, 48), 'int32')
    """
    return keras.Input(shape=(sequence_length,), dtype="int32", name=name)


def features_layer():
    """The weightless layer named `FEATURES_LAYER` that marks a student's
    pooled representation. It adds no weights, so a student's parameter
    count and initial values are the same with or without it."""
    return keras.layers.Identity(name=FEATURES_LAYER)
