"""Model signatures and the data fed to exported artifacts.

Every exported artifact takes the same named inputs as the Keras model: one
`InputSpec` per model input, with a dynamic batch dimension, and returns one
output, `[batch, classes]` logits (`check_logits_output`). The helpers here
read those specs from a model and check user data (representative data for
int8 calibration, validation data for verification) against them, failing with
one line that names the offending input: wrong shapes, strings, NaN or inf,
ids outside the table of the layer that looks them up (`InputSpec.vocabulary_size`),
or arrays of pickled Python objects.
"""

import dataclasses
import os
import re

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import call_arguments
from kd_keras._keras_compat import is_functional
from kd_keras.distillation.checks import check_gives_logits
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One named model input.

    Attributes:
        name: the input's name, used by every artifact's signature.
        shape: tuple with `None` for the batch (and any dynamic) dimension.
        dtype: NumPy dtype name, e.g. `"float32"` or `"int32"`.
        vocabulary_size: for ids that the model looks up in a table (an
            `Embedding`, a pruned student's `VocabularyMap`, through nested
            models), the smallest such table's size: valid ids are
            `0..vocabulary_size - 1`. None when no such layer reads it.
    """

    name: str
    shape: tuple
    dtype: str
    vocabulary_size: int = None

    def tensor_spec(self):
        return tf.TensorSpec(self.shape, tf.as_dtype(self.dtype), name=self.name)

    def to_json(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d):
        return cls(d["name"], tuple(d["shape"]), d["dtype"])


def _model_name(model, what):
    return what if what is not None else f"model {model.name!r}"


def model_input_specs(model, what=None):
    """Returns the `InputSpec`s of a built Keras model, in call order.

    Args:
        model: a functional or Sequential `keras.Model` (anything with
            `model.inputs`).
        what: how error messages name the model (default `model 'NAME'`;
            the command line passes the `.keras` file).

    Returns:
        A list of `InputSpec`; the batch dimension is `None`.

    Raises:
        UsageError: no symbolic inputs, duplicate names, or an input that
            takes strings (export the id model with a `TextExport` preprocessor).

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(2)])
    >>> model_input_specs(m)[0].shape
    (None, 8)
    """
    what = _model_name(model, what)
    if isinstance(getattr(model, "student", None), keras.Model):
        raise UsageError(f"{what}: is a {type(model).__name__}, which trains its student; "
                         "export the student (distiller.student)")
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise UsageError(
            f"{what}: has no symbolic inputs; build it with "
            "keras.Input(...) (functional or Sequential) before exporting"
        )
    struct = model.input if is_functional(model) else None
    if isinstance(struct, dict):
        names = list(struct.keys())
        tensors = [struct[k] for k in names]
    else:
        tensors = list(inputs)
        names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise UsageError(f"{what}: duplicate input names {names}")
    specs = []
    for name, t in zip(names, tensors):
        try:
            dtype = np.dtype(t.dtype)
        except TypeError:  # "string": NumPy has no such dtype.
            dtype = np.dtype(object)
        if dtype.kind in "OSU":
            raise UsageError(
                f"{what}: input {name!r} takes strings ({t.dtype}); exported "
                "models take numeric inputs (token ids): export the id model "
                "with export_model(..., text=TextExport(preprocessor=...)) for raw-text artifacts"
            )
        shape = (None,) + tuple(t.shape[1:])
        size = _table_size(model, t) if dtype.kind in "iu" else None
        specs.append(InputSpec(name, shape, dtype.name, size))
    return specs


_GENERATED_NAME = re.compile(r"(keras_tensor|input_layer)(_\d+)?")


def generated_names(specs):
    """The input names among `specs` that Keras generated because the
    model's `keras.Input` had none (`keras_tensor_3`, or `input_layer_1`
    once saved): they count the tensors or layers built before, so a model
    rebuilt in another order gets other names, and its exported signature
    with them.

    Example:

    >>> generated_names([InputSpec("keras_tensor_3", (None, 4), "float32"),
    ...                  InputSpec("features", (None, 4), "float32")])
    ['keras_tensor_3']
    """
    return [s.name for s in specs if _GENERATED_NAME.fullmatch(s.name)]


def _table_size(model, tensor, depth=0):
    """The size of the smallest table that `tensor`, an input of `model`,
    indexes directly (an `Embedding` or `VocabularyMap`, KerasHub's token
    embedding, looked up through nested models), or None."""
    from kd_keras.students.vocabulary import VocabularyMap

    sizes = []
    for op in getattr(model, "operations", None) or getattr(model, "layers", ()):
        for args in call_arguments(op):
            positions = [i for i, t in enumerate(args) if t is tensor]
            if not positions:
                continue
            token = getattr(op, "token_embedding", None)  # TokenAndPositionEmbedding
            if isinstance(op, keras.layers.Embedding):
                sizes.append(int(op.input_dim))
            elif isinstance(token, keras.layers.Embedding):
                sizes.append(int(token.input_dim))
            elif isinstance(op, VocabularyMap):
                sizes.append(int(op.vocab_size))
            elif isinstance(op, keras.Model) and depth < 8:
                inner = list(getattr(op, "inputs", None) or ())
                if len(inner) == len(args):
                    sizes += [s for s in (_table_size(op, inner[i], depth + 1)
                                          for i in positions) if s is not None]
    return min(sizes) if sizes else None


def check_logits_output(model, what=None):
    """Checks that `model` has one output, `[batch, classes]` logits.

    Every artifact is compared with the model on its arg-max and logits, and
    the report counts its classes: an output of any other shape would make
    those numbers meaningless.

    Args:
        model: a built `keras.Model`.
        what: how error messages name the model (default `model 'NAME'`).

    Returns:
        The number of classes, or None when the class axis is dynamic.

    Raises:
        UsageError: several outputs, an output without a class axis (or
            with more axes), or fewer than 2 classes.

    Example:

    >>> import keras
    >>> x = keras.Input((4,), name="x")
    >>> check_logits_output(keras.Model(x, keras.layers.Dense(3)(x)))
    3
    >>> check_logits_output(keras.Model(x, keras.layers.Reshape((2, 2))(x), name="m"))
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: model 'm': output has shape ('batch', 2, 2); expected [batch, classes] logits
    """
    what = _model_name(model, what)
    outputs = getattr(model, "outputs", None)
    struct = model.output if is_functional(model) else None
    if isinstance(struct, dict) or (outputs is not None and len(outputs) != 1):
        names = list(struct) if isinstance(struct, dict) else [t.name for t in outputs or ()]
        raise UsageError(
            f"{what}: has {len(names)} outputs {names}; export takes a model with "
            "one output, [batch, classes] logits"
        )
    if not outputs:
        return None
    check_gives_logits(what, model=model)
    return check_logits_shape(tuple(outputs[0].shape), what)


def check_logits_shape(shape, what):
    """Checks a logits shape (batch first); returns the class count or None.

    Example:

    >>> check_logits_shape((None, 1), "model")
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: model: output has shape ('batch', 1): 1 class; expected [batch, classes] logits with at least 2 classes
    """
    shown = tuple("batch" if i == 0 else d for i, d in enumerate(shape))
    if len(shape) != 2:
        raise UsageError(
            f"{what}: output has shape {shown}; expected [batch, classes] logits"
        )
    classes = shape[1]
    if classes is not None and classes < 2:
        raise UsageError(
            f"{what}: output has shape {shown}: {classes} class; expected "
            "[batch, classes] logits with at least 2 classes"
        )
    return classes


# TensorFlow's message for an id outside a lookup table (`tf.gather` on CPU).
_OUT_OF_RANGE = re.compile(r"indices\[[\d,]*\] = (-?\d+) is not in \[0, (\d+)\)")


def call_model(model, specs, inputs):
    """Calls `model` on a `{name: tensor}` dict, in the model's own structure.

    Raises:
        DataError: an id outside a table the model looks it up in, which
            `as_input_dict` could not tell from the model's layers.
    """
    try:
        if is_functional(model) and isinstance(model.input, dict):
            return model(dict(inputs), training=False)
        flat = [inputs[s.name] for s in specs]
        return model(flat[0] if len(flat) == 1 else flat, training=False)
    except tf.errors.InvalidArgumentError as e:
        match = _OUT_OF_RANGE.search(str(e))
        if match is None:
            raise
        value, size = int(match.group(1)), int(match.group(2))
        names = [k for k, v in inputs.items() if np.any(np.asarray(v) == value)] or ["?"]
        raise DataError(
            f"input {names[0]!r}: holds id {value}, but a layer of the model looks "
            f"ids up in a table of {size} (ids 0..{size - 1})") from None


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
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"{what}: cannot be read ({e.strerror or e})") from None
    if not (magic.startswith(b"\x93NUMPY") or magic.startswith(b"PK")):
        # NumPy would take it for a pickle and say so: it is no array file.
        raise DataError(f"{what}: not a .npy/.npz file (save arrays with np.save or "
                        "np.savez)")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:  # Its arrays are read (and refused) here.
                return {k: data[k] for k in data.files}
        return data
    except Exception as e:
        if isinstance(e, ValueError) and "allow_pickle" in str(e):
            raise DataError(
                f"{what}: holds pickled Python objects (an object array), which are "
                "never loaded; save numeric arrays") from None
        raise DataError(f"{what}: not a readable .npy/.npz file ({one_line(e)})") from None


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
        if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
            bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
            raise DataError(
                f"{what}: input {spec.name!r} holds NaN or inf in {int(bad.sum())} "
                f"example(s) (the first is example {int(np.argmax(bad))})"
            )
        _check_ids(a, spec, what)
        _check_integer_cast(a, spec, what)
        out[spec.name] = a.astype(spec.dtype, copy=False)
        if out[spec.name].dtype.kind == "f" and not np.isfinite(out[spec.name]).all():
            raise DataError(
                f"{what}: input {spec.name!r} overflows {spec.dtype} (values too large)"
            )
    if not batch:
        raise DataError(f"{what}: holds no examples")
    return out


def _check_integer_cast(a, spec, what):
    """Refuses values that a cast to the input's integer dtype would change:
    a fraction (1.7 becomes 1) or a value out of its range (it wraps)."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind not in "iu" or a.dtype.kind not in "biuf" or not a.size:
        return
    if a.dtype.kind == "f" and not (a == np.round(a)).all():
        raise DataError(f"{what}: input {spec.name!r} holds non-whole numbers; the model "
                        f"takes {dtype.name}")
    info = np.iinfo(dtype)
    if a.min() < info.min or a.max() > info.max:
        raise DataError(f"{what}: input {spec.name!r} holds values outside {dtype.name}'s "
                        f"range [{info.min}, {info.max}]")


def _check_ids(a, spec, what):
    """Refuses ids outside `0..spec.vocabulary_size - 1` (negative ones
    would silently index from the end in Keras)."""
    size = getattr(spec, "vocabulary_size", None)
    if size is None or not a.size or a.dtype.kind not in "iuf":
        return
    flat = a.reshape(len(a), -1)
    bad = (flat < 0) | (flat >= size)
    if bad.any():
        example, position = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{what}: input {spec.name!r} holds id {flat[example, position].item()!r} "
            f"(example {example}); the model looks its ids up in a table of {size} "
            f"(ids 0..{size - 1})")


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
