"""The compute dtype of the models a run builds: the config's `precision`.

With `precision: mixed_bfloat16`, the backbone teacher and the students are
built under Keras's `mixed_bfloat16` dtype policy: their matrix products and
convolutions run in bfloat16, which CPUs with bfloat16 instructions
(AVX512_BF16, AMX) run faster, while the variables stay float32 and
kd_keras's losses compute in float32. A teacher loaded from `teacher.model`
keeps the dtypes it was saved with.

The student a run saves is a float32 copy (`float32_copy`): the same
weights under the float32 policy, so that export, `kd-keras predict` and
users get a float32 model, and the export's checks compare its artifacts
with float32 logits.

Example:

>>> import keras
>>> with building("mixed_bfloat16"):
...     layer = keras.layers.Dense(2)
>>> layer.compute_dtype, keras.config.dtype_policy().name
('bfloat16', 'float32')
"""

import contextlib

import keras

from kd_keras.config.schema import PRECISIONS

FLOAT32 = "float32"


@contextlib.contextmanager
def building(precision):
    """Builds the models made inside under the dtype policy `precision`.

    Keras reads its global policy when a layer is created; this sets it for
    the block and restores the one before.

    Args:
        precision: one of `PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: one of {', '.join(PRECISIONS)}, got {precision!r}")
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _as_float32(config):
    """`config` with every dtype policy of a mixed precision replaced by float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": FLOAT32}}
        return {k: (FLOAT32 if k == "dtype" and v in PRECISIONS else _as_float32(v))
                for k, v in config.items()}
    if isinstance(config, list):
        return [_as_float32(v) for v in config]
    return config


def float32_copy(model):
    """`model` rebuilt under the float32 policy, with the same weights.

    Args:
        model: a Keras model, built.

    Returns:
        `model` itself when every layer computes in float32, else the copy.

    Example:

    >>> import numpy as np
    >>> with building("mixed_bfloat16"):
    ...     mixed = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> plain = float32_copy(mixed)
    >>> plain.layers[0].compute_dtype, plain is float32_copy(plain)
    ('float32', True)
    >>> all(np.array_equal(a, b) for a, b in zip(plain.get_weights(), mixed.get_weights()))
    True
    """
    if all(layer.compute_dtype == FLOAT32 for layer in _layers(model)):
        return model
    config = _as_float32(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _layers(model):
    """Every layer of `model`, nested models' included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


__all__ = ["FLOAT32", "building", "float32_copy"]
