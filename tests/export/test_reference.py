"""The Keras reference of an export: each distinct input set computed once,
equal to the model's own arithmetic in NumPy."""

import keras
import numpy as np
import pytest

from kd_keras.errors import DataError
from kd_keras.export import reference
from kd_keras.export.inputs import model_input_specs


def test_logits_are_computed_once_per_distinct_inputs(monkeypatch):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
    calls = []
    real = reference.keras_logits
    monkeypatch.setattr(reference, "keras_logits",
                        lambda *args: calls.append(1) or real(*args))
    logits = reference.KerasLogits(model, model_input_specs(model))
    x = np.random.default_rng(0).normal(size=(300, 3)).astype("float32")
    first = logits({"x": x})
    assert logits({"x": x.copy()}) is first  # The same values: not run again.
    other = logits({"x": x[:10]})
    assert len(calls) == 2
    kernel, bias = (np.asarray(w, np.float64) for w in model.layers[-1].get_weights())
    np.testing.assert_allclose(first, x.astype(np.float64) @ kernel + bias, atol=1e-5)
    np.testing.assert_array_equal(other, first[:10])
    assert not first.flags.writeable  # Shared between the sets it stands for.


def test_validation_inputs_default_to_the_calibration_data():
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
    specs = model_input_specs(model)
    calibration = {"x": np.ones((5, 3), np.float32)}
    assert reference.validation_inputs(specs, None, calibration) == (calibration, None)
    inputs, labels = reference.validation_inputs(
        specs, {"x": np.zeros((2, 3)), "y": [1, 0]}, calibration)
    assert inputs["x"].dtype == np.float32 and labels.tolist() == [1, 0]
    with pytest.raises(DataError, match="^validation_data: 2 inputs but 3 labels$"):
        reference.validation_inputs(specs, (np.zeros((2, 3)), [1, 0, 1]), None)
