"""`text_cnn`: a convolutional sentence classifier on WordPiece ids (Kim, 2014)."""

import keras

from kd_keras.errors import ConfigError
from kd_keras.students.common import check_cnn_arguments
from kd_keras.students.common import check_rate
from kd_keras.students.common import features_layer
from kd_keras.students.common import option_key
from kd_keras.students.common import plain_numbers
from kd_keras.students.common import token_ids_input


@plain_numbers
def text_cnn(
    num_classes,
    vocab_size=30522,
    sequence_length=48,
    embedding_dim=64,
    filters=100,
    kernel_sizes=(3, 4, 5),
    dropout=0.5,
    name="text_cnn",
):
    """Builds a text CNN: embedding -> parallel Conv1D + max-pool -> logits.

    Only builtin TFLite ops (GATHER, CONV_2D, MAX, CONCATENATION,
    FULLY_CONNECTED), so it converts to TFLite int8 and ONNX as is.

    Layers a feature-distillation term can name: `"features"`, the pooled
    `[batch, filters * len(kernel_sizes)]` n-gram features that feed the
    classifier (before dropout); `"embedding"`, the `[batch,
    sequence_length, embedding_dim]` token embeddings.

    Args:
        num_classes: number of output logits.
        vocab_size: size of the WordPiece vocabulary (ids are `< vocab_size`).
        sequence_length: length of the int32 id sequences.
        embedding_dim: width of the token embedding.
        filters: number of filters per kernel size.
        kernel_sizes: the n-gram widths of the parallel convolutions.
        dropout: dropout rate before the output layer.
        name: the model's name.

    Returns:
        A `keras.Model` mapping int32 `[batch, sequence_length]` ids to
        float32 `[batch, num_classes]` logits.

    Raises:
        ConfigError: a bad argument, named as `student.options.<argument>`.

    Example:

    >>> import numpy as np
    >>> m = text_cnn(2, vocab_size=100, sequence_length=8)
    >>> m(np.ones((3, 8), "int32")).shape
    TensorShape([3, 2])
    >>> m.get_layer("features").output.shape
    (None, 300)
    """
    kernel_sizes = check_cnn_arguments(num_classes, vocab_size, sequence_length,
                                       embedding_dim, filters, kernel_sizes)
    if max(kernel_sizes) > sequence_length:
        raise ConfigError(f"{option_key('kernel_sizes')}: must be at most sequence_length "
                          f"({sequence_length}), got {list(kernel_sizes)}")
    check_rate("dropout", dropout)
    ids = token_ids_input(sequence_length)
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    pooled = []
    for k in kernel_sizes:
        h = keras.layers.Conv1D(filters, k, activation="relu", name=f"conv_{k}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_pool_{k}")(h))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="concat")(pooled)
    x = features_layer()(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name=name)
