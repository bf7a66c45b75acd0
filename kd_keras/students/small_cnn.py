"""`small_cnn`: a small 2-D convolutional image classifier."""

import keras

from kd_keras.errors import ConfigError
from kd_keras.students.common import check_int
from kd_keras.students.common import check_ints
from kd_keras.students.common import check_rate
from kd_keras.students.common import option_key
from kd_keras.students.common import plain_numbers


@plain_numbers
def small_cnn(
    num_classes,
    vocab_size=None,
    sequence_length=None,
    input_shape=(8, 8, 1),
    filters=(16, 32),
    dense_units=64,
    dropout=0.2,
    name="small_cnn",
):
    """Builds Conv2D blocks -> global average pool -> dense -> logits.

    Args:
        num_classes: number of output logits.
        vocab_size: unused (images have no vocabulary); accepted so every
            built-in student shares one signature.
        sequence_length: unused, for the same reason.
        input_shape: image shape `(height, width, channels)`.
        filters: filters of each 3x3 conv block (each but the last block is
            followed by 2x2 max pooling).
        dense_units: width of the hidden dense layer.
        dropout: dropout rate before the output layer.
        name: the model's name.

    Returns:
        A `keras.Model` mapping float32 images to `[batch, num_classes]`
        logits.

    Raises:
        ConfigError: a bad argument, named as `student.options.<argument>`.

    Example:

    >>> import numpy as np
    >>> m = small_cnn(10)
    >>> m(np.zeros((2, 8, 8, 1), "float32")).shape
    TensorShape([2, 10])
    """
    del vocab_size, sequence_length
    check_int("num_classes", num_classes)
    input_shape = check_ints("input_shape", input_shape)
    if len(input_shape) != 3:
        raise ConfigError(f"{option_key('input_shape')}: must be (height, width, channels), "
                          f"got {list(input_shape)}")
    filters = check_ints("filters", filters)
    check_int("dense_units", dense_units)
    check_rate("dropout", dropout)
    images = keras.Input(shape=tuple(input_shape), name="images")
    x = images
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv_{i}")(x)
        if i < len(filters) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(images, logits, name=name)
