"""Model input signatures and the data fed to exported artifacts.

Every exported artifact takes the same named inputs as the Keras model: one
`InputSpec` per model input, with a dynamic batch dimension. The helpers here
read those specs from a model and check user data (representative data for
int8 calibration, validation data for verification) against them, failing with
one line that names the offending input.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One named model input.

    Attributes:
        name: the input's name, used by every artifact's signature.
        shape: tuple with `None` for the batch (and any dynamic) dimension.
        dtype: NumPy dtype name, e.g. `"float32"` or `"int32"`.
    """

    name: str
    shape: tuple
    dtype: str

    def tensor_spec(self):
        return tf.TensorSpec(self.shape, tf.as_dtype(self.dtype), name=self.name)

    def to_json(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d):
        return cls(d["name"], tuple(d["shape"]), d["dtype"])


def model_input_specs(model):
    """Returns the `InputSpec`s of a built Keras model, in call order.

    Args:
        model: a functional or Sequential `keras.Model` (anything with
            `model.inputs`).

    Returns:
        A list of `InputSpec`; the batch dimension is `None`.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(2)])
    >>> model_input_specs(m)[0].shape
    (None, 8)
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise UsageError(
            f"model {model.name!r}: has no symbolic inputs; build it with "
            "keras.Input(...) (functional or Sequential) before exporting"
        )
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        names = list(struct.keys())
        tensors = [struct[k] for k in names]
    else:
        tensors = list(inputs)
        names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise UsageError(f"model {model.name!r}: duplicate input names {names}")
    specs = []
    for name, t in zip(names, tensors):
        shape = (None,) + tuple(t.shape[1:])
        specs.append(InputSpec(name, shape, np.dtype(t.dtype).name))
    return specs


def call_model(model, specs, inputs):
    """Calls `model` on a `{name: tensor}` dict, in the model's own structure."""
    if isinstance(getattr(model, "_inputs_struct", None), dict):
        return model(dict(inputs), training=False)
    flat = [inputs[s.name] for s in specs]
    return model(flat[0] if len(flat) == 1 else flat, training=False)


def load_array_file(path, what):
    """Loads a `.npy` array or a `.npz` dict of arrays.

    Args:
        path: the file.
        what: how the error message names the file, ending with its path
            (e.g. "--validation-data 'val.npz'").

    Returns:
        A NumPy array (`.npy`) or a dict of arrays (`.npz`).
    """
    if not os.path.isfile(path):
        raise MissingFileError(f"{what}: file does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{what}: not a readable .npy/.npz file ({detail})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data


def as_input_dict(x, specs, what):
    """Normalises `x` to `{input name: np.ndarray}` and checks it against `specs`.

    Args:
        x: an array (single-input models), a list/tuple of arrays in input
            order, or a dict keyed by input name (a `.npz` with a single key
            `"x"` is accepted for single-input models).
        specs: the model's `InputSpec`s.
        what: how error messages name the data, e.g. "representative_data".

    Returns:
        A dict of arrays cast to each input's dtype, all with the same batch.

    Example:

    >>> specs = [InputSpec("x", (None, 2), "float32")]
    >>> as_input_dict(np.zeros((3, 2)), specs, "data")["x"].dtype
    dtype('float32')
    """
    names = [s.name for s in specs]
    if isinstance(x, dict):
        if len(specs) == 1 and names[0] not in x and "x" in x:
            x = {names[0]: x["x"]}
        missing = [n for n in names if n not in x]
        if missing:
            raise DataError(
                f"{what}: missing input {missing[0]!r} (the model's inputs "
                f"are {names}; got keys {sorted(x)})"
            )
        arrays = {n: x[n] for n in names}
    elif isinstance(x, (list, tuple)):
        if len(x) != len(specs):
            raise DataError(
                f"{what}: has {len(x)} arrays; the model has {len(specs)} "
                f"inputs {names}"
            )
        arrays = dict(zip(names, x))
    else:
        if len(specs) != 1:
            raise DataError(
                f"{what}: a single array; the model has {len(specs)} inputs "
                f"{names}: pass a dict keyed by input name"
            )
        arrays = {names[0]: x}
    out, batch = {}, None
    for spec in specs:
        try:
            a = np.asarray(arrays[spec.name])
        except (TypeError, ValueError) as e:  # Ragged lists and the like.
            raise DataError(
                f"{what}: input {spec.name!r} is not an array ({e})"
            ) from None
        expected = spec.shape
        ok = a.ndim == len(expected) and all(
            e is None or e == d for e, d in zip(expected[1:], a.shape[1:])
        )
        if not ok:
            shown = tuple("batch" if i == 0 else d for i, d in enumerate(expected))
            raise DataError(
                f"{what}: input {spec.name!r} has shape {a.shape}, but the model "
                f"expects {shown}"
            )
        if a.dtype.kind in "OSU":
            raise DataError(
                f"{what}: input {spec.name!r} has dtype {a.dtype}; the model "
                f"expects {spec.dtype}"
            )
        if batch is not None and a.shape[0] != batch:
            raise DataError(
                f"{what}: input {spec.name!r} has {a.shape[0]} examples, "
                f"others have {batch}"
            )
        batch = a.shape[0]
        out[spec.name] = a.astype(spec.dtype, copy=False)
    if not batch:
        raise DataError(f"{what}: holds no examples")
    return out


def slice_inputs(inputs, start, stop):
    """Returns `{name: array[start:stop]}`."""
    return {k: v[start:stop] for k, v in inputs.items()}


def num_examples(inputs):
    return len(next(iter(inputs.values())))


def synthetic_inputs(specs, n=64, seed=0, dynamic_size=16):
    """Seeded inputs of the right shapes and dtypes, used for the logits
    comparison when no validation data is given (integer inputs take 0/1,
    dynamic dimensions `dynamic_size`)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        shape = (n,) + tuple(d or dynamic_size for d in s.shape[1:])
        if np.dtype(s.dtype).kind in "iub":
            out[s.name] = rng.integers(0, 2, size=shape).astype(s.dtype)
        else:
            out[s.name] = rng.standard_normal(shape).astype(s.dtype)
    return out
