"""What a ready teacher (`teacher.model`) must take: the check that runs
before any work.

The pipeline gives a ready teacher either the student's WordPiece ids,
`[batch, sequence_length]` int32, when its one input is an integer, or the
raw sentences, `[batch]` strings, when it is a string; a teacher that takes
anything else (float features, several inputs, another rank) is refused
with one line that names `teacher.model`, what it takes and what it would
be given.

Example:

>>> import keras
>>> ids = keras.Sequential([keras.Input((8,), dtype="int32"),
...                         keras.layers.Embedding(10, 2)])
>>> check_teacher_inputs(ids, "ids.keras")
True
>>> check_teacher_inputs(keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]),
...                      "mlp.keras")
Traceback (most recent call last):
...
kd_keras.errors.ConfigError: teacher.model: mlp.keras takes float32 [batch, 5]; kd_keras gives a teacher [batch, sequence_length] int32 token ids (to an integer input) or [batch] strings (to a string input)
"""

import keras

from kd_keras import teachers
from kd_keras.errors import ConfigError

GIVEN = ("[batch, sequence_length] int32 token ids (to an integer input) or [batch] "
         "strings (to a string input)")
"""What the pipeline gives a ready teacher (`teacher.model`)."""


def _shown(dtype, shape):
    dims = ["batch"] + ["?" if d is None else str(d) for d in shape[1:]]
    return f"{dtype} [{', '.join(dims)}]"


def check_teacher_inputs(teacher, source):
    """Whether a ready teacher reads token ids or raw strings, from the
    inputs it declares (`kd_keras.teachers.input_specs`), before it runs.

    Args:
        teacher: a `kd_keras.teachers.Teacher` or a `keras.Model`.
        source: the `teacher.model` value, for messages.

    Returns:
        True for one integer input `[batch, length]` (the student's ids),
        False for one string input `[batch]` (or `[batch, 1]` in Keras), or
        a teacher that declares no inputs and tokenizes itself.

    Raises:
        ConfigError: naming `teacher.model`: several inputs, another dtype
            or rank, or a subclassed Keras model that declares no inputs.
    """
    specs = teachers.input_specs(teacher)
    keras_model = isinstance(getattr(teacher, "model", teacher), keras.Model)
    if specs is None:
        if keras_model:
            raise ConfigError(
                f"teacher.model: {source} is a Keras model that declares no inputs (a "
                f"subclassed model); kd_keras gives a teacher {GIVEN}: save a functional "
                "model with such an input")
        return False
    if len(specs) != 1:
        raise ConfigError(
            f"teacher.model: {source} takes {len(specs)} inputs "
            f"({', '.join(name for name, _, _ in specs)}); kd_keras gives a teacher one: {GIVEN}")
    _, dtype, shape = specs[0]
    if "int" in dtype and len(shape) == 2:
        return True
    if dtype == "string" and (len(shape) == 1 or (keras_model and shape[1:] == (1,))):
        return False
    raise ConfigError(f"teacher.model: {source} takes {_shown(dtype, shape)}; kd_keras gives "
                      f"a teacher {GIVEN}")
