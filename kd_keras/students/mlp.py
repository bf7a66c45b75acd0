"""`mlp`: a multilayer perceptron on feature vectors or on token ids."""

import keras

from kd_keras.errors import ConfigError
from kd_keras.students.common import check_int
from kd_keras.students.common import check_ints
from kd_keras.students.common import check_rate
from kd_keras.students.common import check_text_arguments
from kd_keras.students.common import features_layer
from kd_keras.students.common import plain_numbers
from kd_keras.students.common import token_ids_input


@plain_numbers
def mlp(
    num_classes,
    vocab_size=None,
    sequence_length=None,
    input_shape=None,
    hidden_units=(256,),
    embedding_dim=64,
    dropout=0.2,
    name="mlp",
):
    """Builds an MLP student.

    With `vocab_size` and `sequence_length` it reads int32 token ids through
    an averaged embedding (a fastText-style bag of words); otherwise it reads
    float32 features of `input_shape` (flattened).

    Args:
        num_classes: number of output logits.
        vocab_size: vocabulary size when the input is token ids.
        sequence_length: length of the id sequences.
        input_shape: shape of a float feature input, e.g. `(64,)`.
        hidden_units: widths of the hidden ReLU layers.
        embedding_dim: token embedding width (token-id input only).
        dropout: dropout rate after each hidden layer.
        name: the model's name.

    Returns:
        A `keras.Model` outputting `[batch, num_classes]` logits. Its float
        input is named `"features"`; the last hidden layer is `dense_{i}`.
        On token ids, the layer a feature-distillation term can name is
        `"features"`: the last hidden layer's output (the averaged
        embedding without hidden layers), before dropout.

    Raises:
        ConfigError: a bad argument, named as `student.options.<argument>`,
            or neither or both of `input_shape` and `vocab_size` with
            `sequence_length`.

    Example:

    >>> import numpy as np
    >>> m = mlp(10, input_shape=(64,), hidden_units=(32,))
    >>> m(np.zeros((2, 64), "float32")).shape
    TensorShape([2, 10])
    >>> text = mlp(2, vocab_size=100, sequence_length=8, hidden_units=(16,))
    >>> text.get_layer("features").output.shape
    (None, 16)
    """
    check_int("num_classes", num_classes)
    hidden_units = check_ints("hidden_units", hidden_units, allow_empty=True)
    check_rate("dropout", dropout)
    if vocab_size and sequence_length and input_shape is not None:
        raise ConfigError(
            f"student.options.input_shape: {input_shape!r} with token ids (vocab_size and "
            "sequence_length) would be ignored; give one input: features or token ids")
    if vocab_size and sequence_length:
        check_text_arguments(num_classes, vocab_size, sequence_length)
        check_int("embedding_dim", embedding_dim)
        inputs = token_ids_input(sequence_length)
        x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
        x = keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    else:
        if input_shape is None:
            raise ConfigError(
                "student.options.input_shape: mlp needs `input_shape` (features) or "
                "`vocab_size` and `sequence_length` (token ids)"
            )
        input_shape = check_ints("input_shape", input_shape)
        inputs = keras.Input(shape=tuple(input_shape), name="features")
        x = keras.layers.Flatten(name="flatten")(inputs) if len(input_shape) > 1 else inputs
    text = bool(vocab_size and sequence_length)
    if text and not hidden_units:
        x = features_layer()(x)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if text and i == len(hidden_units) - 1:
            x = features_layer()(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
