"""The `metrics` of `Distiller.compile`, read as metrics of logits.

A Distiller's student gives logits (a model ending in a softmax is refused),
but Keras reads the metric name `"sparse_categorical_crossentropy"` as the
cross-entropy of probabilities: on logits it reports a wrong number (9.76
where the true value is 1.18) without a word. `student_metrics` gives that
name the cross-entropy of logits, and refuses a cross-entropy metric object
built for probabilities (`from_logits=False`) in one line.

Example:

>>> [m.get_config()["from_logits"] for m in student_metrics(
...     ["sparse_categorical_crossentropy"])]
[True]
>>> student_metrics("accuracy")
Traceback (most recent call last):
...
kd_keras.errors.UsageError: metrics: expected a list of metrics (or a dict of lists), e.g. ['accuracy'], got 'accuracy'
"""

import keras

from kd_keras.errors import UsageError

# Names Keras resolves to a cross-entropy of probabilities.
_PROBABILITY_NAMES = {
    "sparse_categorical_crossentropy": keras.metrics.SparseCategoricalCrossentropy,
}
_PROBABILITY_CLASSES = (keras.metrics.SparseCategoricalCrossentropy,
                        keras.metrics.CategoricalCrossentropy,
                        keras.metrics.BinaryCrossentropy)
# The same as functions (`keras.metrics.X is keras.losses.X`), which read
# probabilities unless called with `from_logits=True`.
_PROBABILITY_FUNCTIONS = (keras.metrics.sparse_categorical_crossentropy,
                          keras.metrics.categorical_crossentropy,
                          keras.metrics.binary_crossentropy)


def _one(metric):
    if isinstance(metric, str) and metric in _PROBABILITY_NAMES:
        return _PROBABILITY_NAMES[metric](name=metric, from_logits=True)
    if any(metric is fn for fn in _PROBABILITY_FUNCTIONS):
        name = metric.__name__
        if name in _PROBABILITY_NAMES:  # As its name is read.
            return _PROBABILITY_NAMES[name](name=name, from_logits=True)
        raise UsageError(
            f"metrics: keras.metrics.{name} reads probabilities, but the student gives "
            "logits; pass a metric object with from_logits=True")
    if isinstance(metric, _PROBABILITY_CLASSES) and not metric.get_config().get("from_logits"):
        raise UsageError(
            f"metrics: {type(metric).__name__}(from_logits=False) reads probabilities, but "
            "the student gives logits; pass from_logits=True")
    if isinstance(metric, (list, tuple)):
        return type(metric)(_one(m) for m in metric)
    return metric


def student_metrics(metrics):
    """`metrics` as the Distiller compiles them.

    Args:
        metrics: `compile`'s `metrics`: None, a list (or tuple) of metrics
            or lists of them, or a dict of such lists by output name.

    Returns:
        The same structure, `"sparse_categorical_crossentropy"` (the name or
        Keras's function) replaced by its cross-entropy of logits.

    Raises:
        UsageError: a bare metric (Keras takes a list), or a cross-entropy
            metric of probabilities.
    """
    if metrics is None:
        return None
    if isinstance(metrics, dict):
        return {name: _one(value) for name, value in metrics.items()}
    if not isinstance(metrics, (list, tuple)):
        raise UsageError(f"metrics: expected a list of metrics (or a dict of lists), e.g. "
                         f"['accuracy'], got {metrics!r}")
    return _one(metrics)


def metric_names(metrics):
    """The names of `metrics` (as `student_metrics` returns them), flattened."""
    if isinstance(metrics, dict):
        return [n for value in metrics.values() for n in metric_names(value)]
    if isinstance(metrics, (list, tuple)):
        return [n for m in metrics for n in metric_names(m)]
    if metrics is None:
        return []
    return [metrics if isinstance(metrics, str) else getattr(metrics, "name", None)]


__all__ = ["metric_names", "student_metrics"]
