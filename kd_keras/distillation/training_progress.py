"""Training progress for `kd_keras.schedules`, and the metric that logs a
scheduled value.

`TrainingProgress` keeps two variables set by `ProgressCallback` when `fit`
starts: the optimizer step at which this `fit`'s progress is 0 (earlier by
`initial_epoch` epochs, or the epoch a `keras.callbacks.BackupAndRestore`
restored) and the number of steps it takes. In the graph, the
progress of a step is `(optimizer.iterations - start) / total`, clipped to
`[0, 1]`: exact at every step, whatever `steps_per_execution`. When the
number of steps per epoch is unknown (a dataset of unknown length), it is
taken from the optimizer iterations of the first epoch (Keras counts one
more than the batches for such data), during which the progress stays 0.

Evaluation (`fit`'s validation, and `evaluate` after `fit`) takes the
progress of the last step trained, so that `evaluate` on the validation
data gives the last epoch's `val_` values for the same weights.
"""

import inspect

import keras
import tensorflow as tf

from kd_keras._keras_compat import resumed_epoch

from kd_keras.distillation.schedules import Schedule


class TrainingProgress:
    """The progress of the current `fit`, as a float32 tensor in `[0, 1]`.

    Create it inside the strategy scope (where the `Distiller` is built).

    Example:

    >>> import tensorflow as tf
    >>> progress = TrainingProgress()
    >>> progress.start.assign(10); progress.total.assign(4)  # doctest: +ELLIPSIS
    <...>
    >>> float(progress.value(tf.constant(12, "int64")))
    0.5
    """

    def __init__(self):
        self.start = tf.Variable(0, dtype="int64", trainable=False,
                                 name="progress_start")
        self.total = tf.Variable(0, dtype="int64", trainable=False,
                                 name="progress_total")
        # name -> LastValue, one per scheduled (non-constant) quantity; held
        # here, out of Keras's automatic tracking.
        self.loggers = {}

    def log(self, named):
        """Creates a `LastValue` logger for each scheduled (non-constant)
        value of `named` (`{name: number or Schedule}`)."""
        self.loggers = {
            name: LastValue(name) for name, value in named.items()
            if isinstance(value, Schedule) and not value.is_constant}

    def values(self, named, iterations, training=True):
        """Evaluates `named` (`{name: number or Schedule}`) at optimizer
        step `iterations` (for an evaluation, at the last step trained,
        `iterations - 1`), and updates the loggers."""
        if not training:
            iterations = tf.maximum(tf.cast(iterations, "int64") - 1, 0)
        progress = self.value(iterations)
        values = {name: value(progress) if isinstance(value, Schedule)
                  else value for name, value in named.items()}
        for name, logger in self.loggers.items():
            logger.update_state(values[name])
        return values

    def with_callback(self, fit, model, *args, **kwargs):
        """The keyword arguments of `fit(model, *args, **kwargs)`, with a
        `ProgressCallback` added to its callbacks."""
        bound = inspect.signature(fit).bind(model, *args, **kwargs).arguments
        bound.pop(next(iter(inspect.signature(fit).parameters)))
        bound["callbacks"] = list(bound.get("callbacks") or []) + [
            ProgressCallback(self, bound.get("initial_epoch", 0))]
        return bound

    def value(self, iterations):
        """The progress at optimizer step `iterations`."""
        done = tf.cast(tf.cast(iterations, "int64") - self.start, "float32")
        total = tf.cast(self.total, "float32")
        return tf.where(total > 0,
                        tf.clip_by_value(done / tf.maximum(total, 1.0),
                                         0.0, 1.0), 0.0)


class ProgressCallback(keras.callbacks.Callback):
    """Sets a `TrainingProgress` at the start of `fit` (and after the first
    epoch when the steps per epoch were unknown).

    Args:
        progress: the `TrainingProgress`.
        initial_epoch: `fit`'s `initial_epoch`.
    """

    def __init__(self, progress, initial_epoch=0):
        super().__init__()
        self.progress = progress
        self.initial_epoch = int(initial_epoch or 0)
        self._begin = 0

    def _iterations(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        # A `BackupAndRestore` before this callback restored the optimizer
        # step and set the epoch `fit` resumes from, as Keras then reads it.
        self.initial_epoch = int(resumed_epoch(self.model) or self.initial_epoch)
        self._begin = self._iterations()
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if steps:
            self._set(steps, epochs)
        else:
            self.progress.start.assign(self._begin)
            self.progress.total.assign(0)

    def on_epoch_end(self, epoch, logs=None):
        if not self.params.get("steps") and epoch == self.initial_epoch:
            self._set(self._iterations() - self._begin, self.params["epochs"])

    def _set(self, steps, epochs):
        self.progress.start.assign(self._begin - self.initial_epoch * steps)
        self.progress.total.assign(max(int(epochs) * int(steps), 0))


class LastValue(keras.metrics.Metric):
    """A metric whose result is the last value it was given (a scheduled
    `alpha`, `temperature` or weight, logged as it was at the epoch's end).

    Args:
        name: the key in `history.history`.

    Example:

    >>> m = LastValue("alpha")
    >>> m.update_state(0.5); m.update_state(0.25)
    >>> float(m.result())
    0.25
    """

    def __init__(self, name):
        super().__init__(name=name, dtype="float32")
        self.value = self.add_variable(shape=(), initializer="zeros",
                                       dtype="float32", name="value",
                                       aggregation="mean")

    def update_state(self, value):
        self.value.assign(keras.ops.cast(value, "float32"))

    def result(self):
        return keras.ops.convert_to_tensor(self.value)

    def reset_state(self):
        self.value.assign(0.0)


__all__ = ["LastValue", "ProgressCallback", "TrainingProgress"]
