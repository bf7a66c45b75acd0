"""Running a teacher: the one owner of that job.

- `batch_forward(teacher, layers)`: the function that runs any `Teacher` on
  one batch, compiled for a Keras model; the cache builder
  (`kd_keras.cache.cache_teacher_outputs`, also on Ray) and the pipeline's
  logits-only pass call it.
- `teacher_logits(teacher, x)`: `batch_forward` over a whole array, for
  the pipeline's logits-only pass and uncached backbone embeddings.
- `run_teacher(model, x, layers)`: one pass of a Keras teacher over a whole
  array that keeps its logits and the intermediate outputs that feature
  terms name; the pipeline's pass with feature terms.

Two things make the pass fast on a CPU without changing what it computes:

- Only the named outputs are computed. A `TextTeacher`'s hook
  (`call_with_features`) returns every intermediate output (each block's
  hidden states and attention probabilities); here its classifier is
  viewed through the named layers alone.
- Raw strings are tokenized a chunk at a time and sorted by length, and each
  batch is padded only to its longest text rather than to the teacher's
  full sequence length (most sentences are far shorter than that). The
  attention and pooling masks make the padding invisible, so the logits
  and pooled vectors equal those of the padded pass up to float rounding.
  Per-token outputs (`[batch, seq, ...]`) keep the full padded width, as
  the padded pass gives them.
"""

import dataclasses

import numpy as np

from kd_keras.errors import ConfigError
from kd_keras.errors import UsageError

TOKENIZE_CHUNK = 2048
"""Texts tokenized and sorted by length at a time."""


@dataclasses.dataclass(frozen=True)
class TeacherPass:
    """The teacher's logits and named layers on one input array, from one
    forward pass.

    Attributes:
        logits: float32 `[n, num_classes]`.
        layers: dict teacher_layer -> `[n, ...]` (float32, or the
            `feature_dtype` asked for).
    """

    logits: np.ndarray
    layers: dict


def _overflow(layer, value):
    """Refuses float16 targets that overflowed (float16 holds |x| <= 65504)."""
    if np.isfinite(value).all():  # finite in float32: too large for float16
        raise ConfigError(
            f"distill.feature_dtype: float16 cannot hold the teacher layer {layer!r} "
            f"(values up to {np.abs(value).max():.4g}; float16 holds at most 65504); "
            "use float32")


def as_feature_dtype(layer, value, dtype):
    """`value` in `dtype`, refusing float16 overflow with one line naming
    `layer`.

    Example:

    >>> as_feature_dtype("pooled", np.ones(2, "float32"), "float16").dtype
    dtype('float16')
    >>> as_feature_dtype("pooled", np.full(2, 1e6, "float32"), "float16")
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: distill.feature_dtype: float16 cannot hold the teacher layer 'pooled' (values up to 1e+06; float16 holds at most 65504); use float32
    """
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):  # float16 overflow is refused just below
        held = np.asarray(value).astype(dtype)
    if dtype == np.float16 and not np.isfinite(held).all():
        _overflow(layer, value)
    return held


class _Batches:
    """Fills preallocated output arrays batch by batch, at given rows."""

    def __init__(self, n, layers, feature_dtype):
        self.n, self.layers = n, layers
        self.dtypes = [np.dtype(np.float32)] + [np.dtype(feature_dtype)] * len(layers)
        self.arrays = None

    def put(self, rows, outputs):
        values = [np.asarray(v, np.float32) for v in outputs]
        if self.arrays is None:
            self.arrays = [np.empty((self.n,) + v.shape[1:], d)
                           for v, d in zip(values, self.dtypes)]
        for j, value in enumerate(values):
            self.arrays[j][rows] = (value if j == 0 else
                                    as_feature_dtype(self.layers[j - 1], value, self.dtypes[j]))

    def result(self):
        arrays = self.arrays or [np.zeros((0,), d) for d in self.dtypes]
        return TeacherPass(logits=arrays[0], layers=dict(zip(self.layers, arrays[1:])))


def _compiled_view(model, layers, fields):
    """`fn(batch) -> (logits, [value per layer])`: `model` viewed through
    `layers` (`fields` name each in errors), compiled once."""
    import tensorflow as tf

    from kd_keras.distillation.feature_views import FeatureView
    from kd_keras.distillation.feature_views import resolve

    refs = [resolve(model, name, field) for name, field in zip(layers, fields)]
    view = FeatureView(model, refs, "teacher")
    # No AutoGraph: Keras layers need none, and a bad name in a hook's dict
    # then stops with its own one-line UsageError, not a StagingError.
    return tf.function(lambda batch: view(batch, training=False), reduce_retracing=True,
                       autograph=False)


def batch_forward(teacher, layers=()):
    """The function that runs `teacher` on one batch.

    `KerasTeacher.predict_on_batch` calls the model eagerly, which for a
    transformer is several times slower than the graph the online Distiller
    runs; the same call under `tf.function` gives the same logits faster.
    Teachers with their own `predict_on_batch` are called as they are.

    Args:
        teacher: a `kd_keras.teachers.Teacher`.
        layers: names of teacher layers (see
            `kd_keras.distillation.feature_views`); then the function
            returns `(logits, {name: array})` from one forward pass, and the
            teacher must be a Keras model that can give them.

    Returns:
        `fn(x) -> logits` (float32 `[batch, num_classes]`), or with
        `layers`, `fn(x) -> (logits, {name: float32 array})`.

    Raises:
        UsageError: `layers` are asked of a teacher that cannot give them.

    Example:

    >>> import keras
    >>> from kd_keras.teachers import as_teacher
    >>> inputs = keras.Input((3,))
    >>> hidden = keras.layers.Dense(4, name="hidden")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    >>> logits, found = batch_forward(as_teacher(model), ["hidden"])(np.ones((5, 3), "float32"))
    >>> logits.shape, found["hidden"].shape
    ((5, 2), (5, 4))
    """
    import keras
    import tensorflow as tf

    from kd_keras.distillation.feature_views import has_hook
    from kd_keras.distillation.feature_views import is_graph
    from kd_keras.teachers.base import KerasTeacher
    from kd_keras.teachers.base import several_outputs

    layers = tuple(layers)
    if layers:
        model = getattr(teacher, "model", None)
        if not isinstance(model, keras.Model) or not (is_graph(model) or has_hook(model)):
            raise UsageError(
                f"features: the teacher ({type(teacher).__name__}) cannot give intermediate "
                "outputs; use a Functional or Sequential keras.Model teacher, or one with "
                "call_with_features")
        compiled = _compiled_view(model, layers, [f"features[{i}]" for i in range(len(layers))])

        def forward(x):
            logits, values = compiled(x)
            return (np.asarray(logits, dtype=np.float32),
                    {n: np.asarray(v, dtype=np.float32) for n, v in zip(layers, values)})

        return forward
    if type(teacher).predict_on_batch is not KerasTeacher.predict_on_batch:
        return teacher.predict_on_batch
    model = teacher.model
    compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def forward(x):
        logits = compiled(x)
        if isinstance(logits, (list, tuple, dict)):  # A subclassed model's, seen only now
            raise several_outputs(len(logits))
        return np.asarray(logits, dtype=np.float32)

    return forward


def teacher_logits(teacher, x, batch_size=256, desc=None):
    """The logits of `teacher` on every row of `x`, batch by batch through
    `batch_forward`.

    Args:
        teacher: a `kd_keras.teachers.Teacher`.
        x: a non-empty NumPy array (strings as an object array).
        batch_size: rows per call.
        desc: a progress-bar label, or `None` for no bar.

    Returns:
        float32 `[len(x), ...]`, the teacher's outputs in order.

    Example:

    >>> import keras
    >>> from kd_keras.teachers import as_teacher
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> teacher_logits(as_teacher(model), np.ones((5, 3), "float32"), batch_size=2).shape
    (5, 2)
    """
    from tqdm.auto import tqdm

    forward = batch_forward(teacher)
    parts = []
    with tqdm(total=len(x), desc=desc, unit="text", disable=desc is None,
              mininterval=10) as progress:
        for start in range(0, len(x), batch_size):
            parts.append(np.asarray(forward(x[start:start + batch_size]), np.float32))
            progress.update(len(parts[-1]))
    return np.concatenate(parts)


def _text_view(model, layers):
    """A view of a `TextTeacher`'s classifier through `layers` alone, or
    `None` when `model` is not one (or names a layer outside it)."""
    from kd_keras.distillation.feature_views import FeatureView
    from kd_keras.distillation.feature_views import resolve

    classifier = getattr(model, "classifier", None)
    if classifier is None or not hasattr(model, "tokens"):
        return None
    prefix = f"{classifier.name}/"
    if not all(k.startswith(prefix) for k in layers):
        return None
    refs = [resolve(classifier, k[len(prefix):], "teacher_layer") for k in layers]
    return FeatureView(classifier, refs, "teacher")


def run_teacher(model, x, layers=(), batch_size=64, desc=None, feature_dtype="float32"):
    """One forward pass of a Keras teacher over `x` that keeps its logits
    and the layers `layers` name, filled into preallocated arrays (per-token
    layers are large: a list of batches plus their concatenation would
    briefly hold them twice).

    Args:
        model: the teacher `keras.Model` (raw strings or ids in).
        x: the inputs, a NumPy array (strings as an object array).
        layers: teacher layer names, as `distill.features` spells them.
        batch_size: inputs per forward pass.
        desc: a progress-bar label, or `None` for no bar.
        feature_dtype: the dtype the layers are held in (`"float16"`
            halves them); the logits stay float32.

    Raises:
        ConfigError: a layer's values do not fit in float16.

    Returns:
        A `TeacherPass` (arrays of shape `(0,)` when `x` is empty).

    Example:

    >>> import keras
    >>> inputs = keras.Input((3,))
    >>> hidden = keras.layers.Dense(4, name="hidden")(inputs)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    >>> out = run_teacher(model, np.ones((5, 3), "float32"), ["hidden"], batch_size=2)
    >>> out.logits.shape, out.layers["hidden"].shape
    ((5, 2), (5, 4))
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    layers = list(layers)
    out = _Batches(len(x), layers, feature_dtype)
    progress = tqdm(total=len(x), desc=desc, unit="text", disable=desc is None,
                    mininterval=10)
    try:
        text_view = _text_view(model, layers) if x.dtype == object else None
        if text_view is not None:
            classifier = model.classifier

            def call(tokens):
                if not layers:  # A view with no feature returns the bare logits tensor.
                    return classifier(tokens, training=False), []
                return text_view(tokens, training=False)

            forward = None  # traced once, for any batch size and width
            tokenize = tf.function(model.tokens, input_signature=[tf.TensorSpec([None], tf.string)])
            # Per-token outputs keep the padded width; pooled ones may be bucketed.
            bucket = all(len(shape) == 2 for shape in text_view.feature_shapes)
            for start in range(0, len(x), TOKENIZE_CHUNK):
                chunk = x[start:start + TOKENIZE_CHUNK]
                tokens = {k: v.numpy() for k, v in tokenize(tf.constant(list(chunk))).items()}
                if forward is None:
                    forward = tf.function(call, input_signature=[
                        {k: tf.TensorSpec((None, None), v.dtype) for k, v in tokens.items()}])
                lengths = tokens["padding_mask"].sum(axis=1)
                order = np.argsort(lengths, kind="stable") if bucket else np.arange(len(chunk))
                for i in range(0, len(order), batch_size):
                    rows = order[i:i + batch_size]
                    width = int(lengths[rows].max()) if bucket else None
                    logits, values = forward({k: v[rows, :width] for k, v in tokens.items()})
                    out.put(start + rows, [logits, *values])
                    progress.update(len(rows))
        else:
            forward = _compiled_view(model, layers, ["teacher_layer"] * len(layers))
            for i in range(0, len(x), batch_size):
                batch = x[i:i + batch_size]
                batch = tf.constant(list(batch)) if batch.dtype == object else batch
                logits, values = forward(batch)
                out.put(np.arange(i, i + len(batch)), [logits, *values])
                progress.update(len(batch))
    finally:  # A bar left open would nest every later bar.
        progress.close()
    return out.result()
