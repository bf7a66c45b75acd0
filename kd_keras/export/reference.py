"""The Keras reference an export is verified against: its logits.

Every artifact of `export_model` is compared with the Keras model's logits
on the validation inputs, the raw-text artifacts with its logits on the ids
their sentences stand for, and each int8 recipe with its logits on the
calibration inputs. `KerasLogits` computes the logits of each distinct set
of inputs once: in `kd-keras distill` the sentences stand for the very test
ids the model set holds, and without validation data the calibration
inputs are the validation inputs, so a second pass would give the same
numbers again.
"""

import keras
import numpy as np

from kd_keras.class_ids import label_problem
from kd_keras.errors import DataError
from kd_keras.export.inputs import as_input_dict
from kd_keras.export.inputs import call_model
from kd_keras.export.inputs import num_examples
from kd_keras.export.inputs import slice_inputs
from kd_keras.export.inputs import synthetic_inputs


def keras_logits(model, specs, inputs, batch_size=256):
    """The Keras model's float32 logits on `inputs`, in batches."""
    n = num_examples(inputs)
    parts = []
    for i in range(0, n, batch_size):
        logits = call_model(model, specs, slice_inputs(inputs, i, i + batch_size))
        parts.append(np.asarray(keras.ops.convert_to_numpy(logits), np.float32))
    return np.concatenate(parts, axis=0)


def same_inputs(a, b):
    """True when two `{name: array}` hold the same names, dtypes and values.

    Example:

    >>> x = {"ids": np.arange(6).reshape(2, 3)}
    >>> same_inputs(x, {"ids": x["ids"].copy()}), same_inputs(x, {"ids": x["ids"][:1]})
    (True, False)
    """
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


class KerasLogits:
    """The Keras model's logits (`keras_logits`), once per distinct inputs.

    Args:
        model: the Keras model.
        specs: its `InputSpec`s.

    Example:

    >>> m = keras.Sequential([keras.Input((2,), name="x"), keras.layers.Dense(2)])
    >>> from kd_keras.export.inputs import model_input_specs
    >>> logits = KerasLogits(m, model_input_specs(m))
    >>> x = {"x": np.ones((3, 2), "float32")}
    >>> logits(x) is logits({"x": np.ones((3, 2), "float32")})
    True
    """

    def __init__(self, model, specs):
        self.model, self.specs = model, specs
        self._computed = []

    def __call__(self, inputs):
        for known, logits in self._computed:
            if same_inputs(known, inputs):
                return logits
        logits = keras_logits(self.model, self.specs, inputs)
        logits.setflags(write=False)  # Shared by every set it stands for.
        self._computed.append((inputs, logits))
        return logits


def split_validation(validation_data):
    """`(x, y)` from `(x, y)`, `x`, or a dict of inputs plus `"y"`/`"labels"`."""
    if isinstance(validation_data, tuple) and len(validation_data) == 2:
        return validation_data
    if isinstance(validation_data, dict):
        rest = dict(validation_data)
        y = rest.pop("y", rest.pop("labels", None))
        return rest, y
    return validation_data, None


def validation_inputs(specs, validation_data, calibration):
    """The inputs and labels every artifact is verified on.

    Args:
        specs: the model's `InputSpec`s.
        validation_data: `export_model`'s `validation_data`, or None.
        calibration: the checked representative inputs, or None.

    Returns:
        `(inputs, labels)`: `validation_data` checked against `specs`, else
        the calibration inputs, else seeded synthetic inputs (no labels);
        labels are int64 or None.

    Raises:
        DataError: inputs of the wrong shape, or as many labels as inputs.
    """
    if validation_data is None:
        return (calibration if calibration is not None else synthetic_inputs(specs)), None
    x, y = split_validation(validation_data)
    inputs = as_input_dict(x, specs, "validation_data")
    if y is not None:
        problem = label_problem(y)
        if problem:
            raise DataError(f"validation_data: {problem}")
        y = np.asarray(y).reshape(-1).astype(np.int64)
        if len(y) != num_examples(inputs):
            raise DataError(
                f"validation_data: {num_examples(inputs)} inputs but {len(y)} labels")
    return inputs, y


def check_label_range(labels, num_classes):
    """Refuses validation labels that are not classes of the model (-1
    marks an unlabeled example, which accuracy skips).

    Example:

    >>> check_label_range(np.array([0, 2]), 3)
    >>> check_label_range(np.array([0, 5]), 3)
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: validation_data: label 5 (example 1) is out of range: labels must be -1 (unlabeled) or in [0, 2] (the model outputs 3 logits)
    """
    problem = None if labels is None else label_problem(labels, num_classes)
    if problem:
        raise DataError(f"validation_data: {problem} (the model outputs {num_classes} logits)")
