"""A student's vocabulary pruned to the ids its training rows use.

A text student reads WordPiece ids of the teacher's vocabulary (30,522 for
MiniLM), but a training set uses a fraction of them, and the rows of the
other ids are never trained. With `student.prune_vocabulary: true`,
`prune_vocabulary` builds the student's embedding for the used ids only,
plus one row shared by every id the training rows never use (untrained too,
as their own rows would be; with `student.vocabulary_min_count: N`, also by
the ids used fewer than N times, and with `student.vocabulary_max_rows: N`
by all but the N - 1 most used), and puts a `VocabularyMap` layer in front
of it, so the embedding, most of a text student's parameters, shrinks with
the vocabulary. The saved and exported student still reads the full
vocabulary's ids, so tokenizers and the export inputs do not change; the
model is named after the student with `_pruned` appended.

Example:

>>> import numpy as np
>>> vocabulary = used_vocabulary(np.array([[5, 7, 0], [7, 9, 0]]), vocab_size=12)
>>> vocabulary.size, vocabulary.table.tolist()
(5, [0, 4, 4, 4, 4, 1, 4, 2, 4, 3, 4, 4])
"""

import dataclasses
import numbers

import keras
import numpy as np

from kd_keras.errors import ConfigError
from kd_keras.errors import UsageError

PRUNE_KEY = "student.prune_vocabulary"
MIN_COUNT_KEY = "student.vocabulary_min_count"
MAX_ROWS_KEY = "student.vocabulary_max_rows"
PAD_ID = 0
"""The padding id, which keeps row 0 in a pruned vocabulary."""


@dataclasses.dataclass(frozen=True)
class UsedVocabulary:
    """The map from full-vocabulary ids to pruned embedding rows.

    Attributes:
        table: int32 `[full vocab_size]`: row `i` is the pruned row of id
            `i`; the padding id 0 and the used ids get `0 .. size - 2` in
            increasing id order (so padding always gets row 0) and every
            other id the last row, `size - 1`.
        size: the pruned vocabulary's size (padding, the used ids and the
            shared row).
    """

    table: np.ndarray
    size: int


def used_vocabulary(train_ids, vocab_size, min_count=1, max_rows=None):
    """The `UsedVocabulary` of the ids in `train_ids`.

    Args:
        train_ids: int array of the training rows' ids (any shape).
        vocab_size: the full vocabulary's size (every id is below it).
        min_count: how often an id must occur in `train_ids` to get a row
            of its own; rarer ids share the last row with the unused ones
            (`student.vocabulary_min_count`: a smaller table, for a model
            small enough to ship in an app). Padding keeps its row.
        max_rows: at most this many rows in all, the shared one included:
            padding and the `max_rows - 2` most used other ids keep a row
            (ties go to the smaller id), so the table's size is bounded
            whatever the data (`student.vocabulary_max_rows`).

    Returns:
        A `UsedVocabulary`.

    Raises:
        ValueError: an id outside `[0, vocab_size)`.
        UsageError: `min_count` below 1 or `max_rows` below 2 (a row for
            the used ids and the shared one), or not whole numbers.

    Example:

    >>> used_vocabulary(np.array([[5, 7, 0], [7, 9, 0]]), 12, min_count=2).table.tolist()
    [0, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2]
    >>> used_vocabulary(np.array([[5, 7, 0], [7, 9, 0]]), 12, max_rows=3).table.tolist()
    [0, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2]
    """
    for name, value, low in (("min_count", min_count, 1), ("max_rows", max_rows, 2)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, numbers.Integral) or value < low):
            raise UsageError(f"{name}: must be a whole number >= {low}, got {value!r}")
    used, counts = np.unique(np.asarray(train_ids), return_counts=True)
    if used.size and (used[0] < 0 or used[-1] >= vocab_size):
        raise ValueError(f"ids must be in [0, {vocab_size}), got {used[0]} .. {used[-1]}")
    if not used.size or used[0] != PAD_ID:
        used, counts = np.insert(used, 0, PAD_ID), np.insert(counts, 0, 0)
    # The padding id keeps row 0, used or not: a student that masks padding
    # (`tiny_bert`) takes row 0 for it.
    pad = used == PAD_ID
    keep = (counts >= min_count) | pad
    if max_rows is not None and keep.sum() > max_rows - 1:
        # Padding first, then the most used, then the smaller id.
        order = np.lexsort((used, -counts, ~pad))
        limit = np.zeros_like(keep)
        limit[order[:max_rows - 1]] = True
        keep &= limit
    used = used[keep]
    table = np.full(vocab_size, used.size, np.int32)
    table[used] = np.arange(used.size, dtype=np.int32)
    return UsedVocabulary(table=table, size=int(used.size) + 1)


@keras.saving.register_keras_serializable(package="kd_keras")
class VocabularyMap(keras.layers.Layer):
    """Maps full-vocabulary ids to pruned embedding rows (`UsedVocabulary`).

    The table is a non-trainable integer weight, so it is saved with the
    model and exports as one gather (a builtin op in TFLite and ONNX).
    `prune_vocabulary` makes it int16 when the pruned rows fit, which halves
    what it adds to an exported model (61 KB instead of 122 KB for MiniLM's
    30,522 ids); the rows it gives are int32, as an embedding reads them.

    Args:
        vocab_size: the full vocabulary's size (the table's length).
        table_dtype: `"int32"` or `"int16"` (rows below 32,768).

    Example:

    >>> layer = VocabularyMap(4)
    >>> layer.build((None, 2))
    >>> _ = layer.table.assign(np.array([0, 2, 2, 1], "int32"))
    >>> layer(np.array([[3, 1]])).numpy().tolist()
    [[1, 2]]
    """

    def __init__(self, vocab_size, table_dtype="int32", **kwargs):
        super().__init__(**kwargs)
        if table_dtype not in ("int32", "int16"):
            raise ValueError(f"table_dtype: must be int32 or int16, got {table_dtype!r}")
        self.vocab_size = int(vocab_size)
        self.table_dtype = table_dtype

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.vocab_size,), dtype=self.table_dtype,
                                     initializer="zeros", trainable=False, name="table")

    def call(self, ids):
        """Full-vocabulary ids to the pruned embedding's rows."""
        rows = keras.ops.take(self.table, keras.ops.cast(ids, "int32"), axis=0)
        return rows if self.table_dtype == "int32" else keras.ops.cast(rows, "int32")

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "table_dtype": self.table_dtype}


def prune_vocabulary(build, vocabulary):
    """A student on the pruned vocabulary, reading full-vocabulary ids.

    Args:
        build: `vocab_size -> keras.Model`, the student's builder with every
            other argument bound; its model must take one integer id input.
        vocabulary: the `UsedVocabulary`.

    Returns:
        A `keras.Model` with the same input and outputs as `build`'s, whose
        layers are a `VocabularyMap` named `"vocabulary_map"` and the student
        built for `vocabulary.size` ids (its layers keep their names, so a
        feature term's `student_layer: features` still finds its layer).

    Raises:
        ConfigError: the student does not take one int32 id input.

    Example:

    >>> from kd_keras.students import text_cnn
    >>> vocabulary = used_vocabulary(np.array([[5, 7, 0]]), vocab_size=100)
    >>> m = prune_vocabulary(lambda n: text_cnn(2, vocab_size=n, sequence_length=8,
    ...                                         embedding_dim=4, filters=2), vocabulary)
    >>> m.get_layer("text_cnn").get_layer("embedding").input_dim
    4
    >>> m(np.array([[5, 7, 0, 99, 99, 99, 99, 99]])).shape
    TensorShape([1, 2])
    """
    student = build(vocabulary.size)
    inputs = student.inputs
    if len(inputs) != 1 or inputs[0].dtype not in ("int32", "int64"):
        raise ConfigError(f"{PRUNE_KEY}: needs a student with one integer id input; "
                          f"{student.name!r} takes {[(t.name, t.dtype) for t in inputs]}")
    ids = keras.Input(shape=inputs[0].shape[1:], dtype=inputs[0].dtype, name=inputs[0].name)
    table_dtype = "int16" if vocabulary.size <= np.iinfo(np.int16).max + 1 else "int32"
    mapping = VocabularyMap(len(vocabulary.table), table_dtype, name="vocabulary_map")
    outputs = student(mapping(ids))
    mapping.table.assign(vocabulary.table)
    return keras.Model(ids, outputs, name=f"{student.name}_pruned")
