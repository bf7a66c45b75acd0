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
import numpy as np
import tensorflow as tf

from kd_keras import teachers
from kd_keras.errors import ConfigError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line

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


def check_teacher_vocabulary(teacher, vocab_size, source, length):
    """Refuses a ready teacher that reads the student's ids through a
    lookup table with fewer rows than the student's vocabulary: the ids it
    would be given could fall outside it (an error deep in a runtime,
    minutes into the labelling, or a silent wrong lookup).

    A Keras `Embedding` at the input shows its size; any other teacher (an
    ONNX or SavedModel file) is run once on a row of the largest id.

    Args:
        teacher: a `kd_keras.teachers.Teacher` or a `keras.Model` that reads
            ids (`check_teacher_inputs` returned True).
        vocab_size: the size of the student's vocabulary.
        source: the `teacher.model` value, for messages.
        length: the ids' sequence length.

    Raises:
        ConfigError: naming `teacher.model`, its table's size (or its
            runtime's refusal) and the vocabulary's.

    Example:

    >>> small = keras.Sequential([keras.Input((8,), dtype="int32"),
    ...                           keras.layers.Embedding(29, 2)])
    >>> check_teacher_vocabulary(small, 29, "t.keras", 8)
    >>> check_teacher_vocabulary(small, 30522, "t.keras", 8)
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: teacher.model: t.keras looks its ids up in a table of 29 (ids 0..28), but the student's vocabulary has 30522 ids; give the teacher a table of at least 30522 rows, or set student.vocabulary to the vocab.txt it was trained with
    """
    from kd_keras.export.inputs import model_input_specs

    advice = (f"give the teacher a table of at least {vocab_size} rows, or set "
              "student.vocabulary to the vocab.txt it was trained with")
    model = getattr(teacher, "model", teacher)
    size = None
    if isinstance(model, keras.Model):
        try:
            size = model_input_specs(model)[0].vocabulary_size
        except UsageError:  # No symbolic inputs: the run below tells.
            pass
    if size is not None:
        if size < vocab_size:
            raise ConfigError(
                f"teacher.model: {source} looks its ids up in a table of {size} (ids "
                f"0..{size - 1}), but the student's vocabulary has {vocab_size} ids; {advice}")
        return
    run = teachers.as_teacher(teacher)
    try:
        run.predict_on_batch(np.full((1, length), vocab_size - 1, np.int32))
    except (UsageError, tf.errors.InvalidArgumentError) as e:
        run.predict_on_batch(np.zeros((1, length), np.int32))  # Fails alike: not the ids.
        raise ConfigError(
            f"teacher.model: {source} cannot read the student's largest id "
            f"{vocab_size - 1} ({one_line(e)}); the student's vocabulary has {vocab_size} "
            f"ids: {advice}") from None