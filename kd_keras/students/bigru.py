"""`bigru`: a bidirectional GRU sentence classifier on WordPiece ids."""

import keras

from kd_keras.students.common import check_int
from kd_keras.students.common import check_rate
from kd_keras.students.common import check_text_arguments
from kd_keras.students.common import features_layer
from kd_keras.students.common import plain_numbers
from kd_keras.students.common import token_ids_input


@plain_numbers
def bigru(
    num_classes,
    vocab_size=30522,
    sequence_length=48,
    embedding_dim=64,
    units=64,
    dropout=0.3,
    name="bigru",
):
    """Builds embedding -> bidirectional GRU -> logits.

    The GRUs are unrolled over the fixed `sequence_length`, so the exported
    graph has no while-loop: it converts to TFLite (builtin ops only, int8
    included) and ONNX. Padding (id 0) is not masked; the backward GRU simply
    reads the padding first, which it learns to ignore.

    Layers a feature-distillation term can name: `"features"`, the
    `[batch, 2 * units]` final states of both directions that feed the
    classifier (before dropout); `"embedding"`, the `[batch,
    sequence_length, embedding_dim]` token embeddings.

    Args:
        num_classes: number of output logits.
        vocab_size: size of the WordPiece vocabulary.
        sequence_length: length of the int32 id sequences.
        embedding_dim: width of the token embedding.
        units: GRU units per direction.
        dropout: dropout rate before the output layer.
        name: the model's name.

    Returns:
        A `keras.Model` mapping int32 ids to `[batch, num_classes]` logits.

    Raises:
        ConfigError: a bad argument, named as `student.options.<argument>`.

    Example:

    >>> import numpy as np
    >>> m = bigru(3, vocab_size=50, sequence_length=6, units=4)
    >>> m(np.ones((2, 6), "int32")).shape
    TensorShape([2, 3])
    >>> m.get_layer("features").output.shape
    (None, 8)
    """
    check_text_arguments(num_classes, vocab_size, sequence_length)
    check_int("embedding_dim", embedding_dim)
    check_int("units", units)
    check_rate("dropout", dropout)
    ids = token_ids_input(sequence_length)
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = keras.layers.Bidirectional(
        keras.layers.GRU(units, unroll=True), name="bigru"
    )(x)
    x = features_layer()(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name=name)
