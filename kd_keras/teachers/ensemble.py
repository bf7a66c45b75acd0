"""Several teachers combined into one."""

import hashlib

import keras
import numpy as np

from kd_keras.distillation.checks import check_gives_logits
from kd_keras.errors import UsageError
from kd_keras.teachers.base import Teacher
from kd_keras.teachers.base import as_teacher

_COMBINE = ("logits", "probabilities")


def _normalized(weights, count):
    if weights is None:
        weights = [1.0] * count
    try:
        weights = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"weights: must be numbers, got {weights!r:.80}") from None
    if weights.shape != (count,):
        raise UsageError(f"weights: {weights.size} entries for {count} teachers")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise UsageError(
            f"weights: must be finite, non-negative and with a positive sum, got "
            f"{weights.tolist()}")
    return weights / weights.sum()


@keras.saving.register_keras_serializable(package="kd_keras")
class WeightedLogitAverage(keras.layers.Layer):
    """Combines a list of `[batch, classes]` logits.

    `combine="logits"` returns the weighted mean of the logits;
    `combine="probabilities"` returns the log of the weighted mean of the
    softmax probabilities (a valid logit vector: its softmax is that mean).

    Args:
        weights: one non-negative weight per input; normalised to sum 1.
        combine: `"logits"` or `"probabilities"`.

    Example:

    >>> import numpy as np
    >>> layer = WeightedLogitAverage([1.0, 3.0])
    >>> layer([np.zeros((1, 2)), np.ones((1, 2)) * 4.0]).numpy().tolist()
    [[3.0, 3.0]]
    """

    def __init__(self, weights, combine="logits", **kwargs):
        super().__init__(**kwargs)
        if combine not in _COMBINE:
            raise UsageError(f"combine: must be one of {_COMBINE}, got {combine!r}")
        self.member_weights = [float(w) for w in weights]
        self.combine = combine

    def call(self, logits):
        weights = _normalized(self.member_weights, len(logits))
        stacked = keras.ops.stack(
            [keras.ops.cast(z, "float32") for z in logits], axis=0
        )
        w = keras.ops.convert_to_tensor(weights.astype("float32"))[:, None, None]
        if self.combine == "logits":
            return keras.ops.sum(w * stacked, axis=0)
        log_probs = keras.ops.log_softmax(stacked, axis=-1)
        return keras.ops.logsumexp(log_probs + keras.ops.log(w), axis=0)

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def get_config(self):
        config = super().get_config()
        config.update(weights=self.member_weights, combine=self.combine)
        return config


def _numpy_combine(logits, weights, combine):
    stacked = np.stack([np.asarray(z, np.float64) for z in logits])
    w = weights[:, None, None]
    if combine == "logits":
        return (w * stacked).sum(axis=0).astype(np.float32)
    shifted = stacked - stacked.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    a = log_probs + np.log(np.maximum(w, 1e-300))
    top = a.max(axis=0)
    return (top + np.log(np.exp(a - top).sum(axis=0))).astype(np.float32)


def _input_structure(model):
    """The model's symbolic inputs, with their structure (dict or tensor)."""
    try:
        return model.input
    except AttributeError:  # A Sequential model exposes only `inputs`.
        inputs = model.inputs
        if not inputs:
            raise UsageError(
                f"{model.name}: the teacher model is not built; give it a "
                "keras.Input before ensembling")
        return inputs[0] if len(inputs) == 1 else inputs


class EnsembleTeacher(Teacher):
    """A weighted ensemble of teachers.

    When every member runs in the graph, the ensemble does too: `model` is a
    `keras.Model` that calls every member on the same inputs and combines
    their logits with `WeightedLogitAverage`. Otherwise each member runs on
    its own and the logits are combined in NumPy (use it through the cache).
    The fingerprint hashes the members' fingerprints, the weights and the
    combination, so an ensemble caches like a single teacher.

    Args:
        teachers: `Teacher`s or `keras.Model`s, all with the same inputs and
            number of classes.
        weights: one weight per teacher (default: equal); normalised.
        combine: `"logits"` (weighted mean of logits) or `"probabilities"`
            (log of the weighted mean of softmax probabilities).

    Example:

    >>> import keras, numpy as np
    >>> a = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> b = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> ens = EnsembleTeacher([a, b], weights=[2, 1], combine="probabilities")
    >>> ens.predict_on_batch(np.zeros((4, 3))).shape
    (4, 2)
    """

    def __init__(self, teachers, weights=None, combine="logits"):
        if not teachers:
            raise UsageError("teachers: an ensemble needs at least one teacher")
        if combine not in _COMBINE:
            raise UsageError(f"combine: must be one of {_COMBINE}, got {combine!r}")
        self.teachers = [as_teacher(t) for t in teachers]
        classes = {int(t.model.outputs[0].shape[-1]) for t in self.teachers
                   if getattr(getattr(t, "model", None), "outputs", None)
                   and t.model.outputs[0].shape[-1] is not None}
        if len(classes) > 1:
            raise UsageError(f"teachers: the members give {sorted(classes)} classes; an "
                             "ensemble's members must give the same classes")
        self.weights = _normalized(weights, len(self.teachers))
        self.combine = combine
        self.in_graph = all(t.in_graph for t in self.teachers)
        self.model = self._build_model() if self.in_graph else None
        self._checked = False

    def _build_model(self):
        inputs = keras.tree.map_structure(
            lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name),
            _input_structure(self.teachers[0].model),
        )
        logits = [t.model(inputs) for t in self.teachers]
        outputs = WeightedLogitAverage(
            self.weights.tolist(), self.combine, name="ensemble"
        )(logits)
        return keras.Model(inputs, outputs, name="ensemble_teacher")

    def predict_on_batch(self, x):
        """The combined logits of one batch, float32 NumPy."""
        if self.model is not None:
            logits = self.model(x, training=False)
            return np.asarray(keras.ops.convert_to_numpy(logits), dtype=np.float32)
        logits = [np.asarray(t.predict_on_batch(x)) for t in self.teachers]
        shapes = {tuple(z.shape) for z in logits}
        if len(shapes) > 1 or logits[0].ndim != 2:
            raise UsageError(f"teachers: the members give logits of shapes "
                             f"{[list(z.shape) for z in logits]}; an ensemble's members must "
                             "give [batch, classes] logits of the same classes")
        if not self._checked:  # Probabilities would be averaged in as logits.
            for i, z in enumerate(logits):
                check_gives_logits(f"teachers[{i}]", values=z)
            self._checked = True
        return _numpy_combine(logits, self.weights, self.combine)

    def fingerprint(self):
        """Changes with any member's fingerprint (taken afresh), the weights
        or the combination."""
        digest = hashlib.sha256(b"ensemble")
        digest.update(self.combine.encode())
        digest.update(self.weights.astype(np.float64).tobytes())
        for teacher in self.teachers:
            digest.update(teacher.fingerprint().encode())
        return digest.hexdigest()
