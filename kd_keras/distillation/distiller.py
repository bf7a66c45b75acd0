"""`Distiller`: a `keras.Model` that trains a student to imitate a teacher."""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import DistributedFitMixin
from kd_keras._keras_compat import SymbolicBuildHook
from kd_keras._keras_compat import loss_tracker
from kd_keras.distillation import checks
from kd_keras.distillation import losses as losses_module
from kd_keras.distillation import replicas
from kd_keras.distillation import schedules
from kd_keras.distillation.distiller_saving import DistillerSaving
from kd_keras.distillation.feature_losses import per_example as _per_example
from kd_keras.distillation.features import FeatureSet
from kd_keras.distillation.features import as_terms
from kd_keras.distillation.student_metrics import metric_names
from kd_keras.distillation.student_metrics import student_metrics
from kd_keras.distillation.targets import LABELS_KEY  # noqa: F401 (re-exported)
from kd_keras.distillation.targets import TEACHER_FEATURES_KEY  # noqa: F401
from kd_keras.distillation.targets import TEACHER_LOGITS_KEY  # noqa: F401
from kd_keras.distillation.targets import batch_teacher_outputs
from kd_keras.distillation.targets import split_targets
from kd_keras.distillation.training_progress import TrainingProgress
from kd_keras.errors import UsageError

_RESERVED = ("loss", "student_loss", "distillation_loss", "alpha",
             "temperature")


@keras.saving.register_keras_serializable(package="kd_keras")
class Distiller(DistillerSaving, DistributedFitMixin, SymbolicBuildHook, keras.Model):
    """Trains `student` on a mix of hard labels and the teacher's soft targets.

    The loss of a batch is

        alpha * student_loss + (1 - alpha) * distillation_loss
            + sum(weight_i * feature_i)

    - `distillation_loss` is the mean over the batch of
      `distillation_loss_fn(teacher_logits, student_logits)` (default:
      `kd_keras.losses.soft_target_kl` at `temperature`), weighted by
      `sample_weight` when given.
    - `student_loss` is the hard-label loss (default: sparse categorical
      cross-entropy from logits), averaged over the *labeled* examples of the
      batch only. A label of `-1` marks an unlabeled example: it contributes
      to the soft loss only. With `sample_weight`, each labeled example's loss
      is multiplied by its weight and the sum is divided by the number of
      labeled examples (as Keras's `"sum_over_batch_size"` does, restricted to
      labeled examples). A batch with no labeled example has a hard loss of 0.
    - `feature_i` is the mean over the batch of the per-example value of the
      i-th `kd_keras.FeatureDistillation` term, weighted as the soft loss,
      logged under its `name` (see `kd_keras.features`). The student runs
      once per step: its features come from the pass that gives its logits.
    - `alpha`, `temperature` and each term's `weight` may be a
      `kd_keras.schedules` schedule, evaluated at every step and logged
      under `alpha`, `temperature` and `<term>_weight`.

    Under `tf.distribute` the counts are taken over the *global* batch, so one
    device and N replicas give the same loss, gradients and history. The
    student's regularisation losses are added to `loss` (and `val_loss`).

    The teacher is frozen and always runs with `training=False`. `call()` is
    the student's forward pass. The teacher may be `None`: then every batch's
    targets must carry the teacher's logits, as a dict
    `{"labels": y, "teacher_logits": logits}` (what
    `kd_keras.cache.TeacherCache.as_dataset` yields), plus
    `"teacher_features": {teacher_layer: tensor}` with feature terms. Such a
    dict also overrides a teacher that is set.

    A `kd_keras.teachers.Teacher` (what `kd_keras.teachers.load_teacher`
    returns) is accepted too; one that does not run in the graph (ONNX,
    `transformers`) runs through `tf.numpy_function`, see
    `kd_keras.teachers.graph`.

    Args:
        teacher: a `keras.Model` (or layer) that outputs logits, a
            `kd_keras.teachers.Teacher`, or `None`.
        student: a `keras.Model` that outputs logits.
        features: a list of `kd_keras.FeatureDistillation` terms.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    >>> import keras, numpy as np, kd_keras
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> distiller = kd_keras.Distiller(teacher=teacher, student=student)
    >>> distiller.compile(optimizer="sgd", alpha=0.1, temperature=3.0)
    >>> x = np.random.rand(8, 4).astype("float32")
    >>> y = np.array([0, 1, 2, -1, 0, 1, -1, 2])
    >>> h = distiller.fit(x, y, epochs=1, verbose=0)
    >>> sorted(h.history)
    ['distillation_loss', 'loss', 'student_loss']
    """

    def __init__(self, teacher, student, features=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(student, keras.layers.Layer):
            raise UsageError(
                "student: expected a keras.Model, got "
                f"{type(student).__name__}")
        self._outside_graph = False
        if teacher is not None and not isinstance(teacher,
                                                  keras.layers.Layer):
            from kd_keras.teachers.graph import NumpyFunctionTeacher
            from kd_keras.teachers.graph import graph_teacher

            teacher = graph_teacher(teacher, checks.output_classes(student))
            self._outside_graph = isinstance(teacher, NumpyFunctionTeacher)
        checks.check_gives_logits("teacher", model=teacher)
        checks.check_gives_logits("student", model=student)
        checks.check_nothing_shared(teacher, student)
        if teacher is not None:
            teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.num_classes = checks.check_class_dims(teacher, student)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self.features = as_terms(features)
        self._features = None  # The FeatureSet (not tracked by Keras).
        if self.features:
            self._features = FeatureSet(self.features, teacher, student,
                                        reserved=_RESERVED)
            self.projections = self._features.projection_layers
            self.feature_loss_trackers = [
                keras.metrics.Mean(name=term.name) for term in self.features]
        self._progress = TrainingProgress()
        self.alpha = 0.1
        self.temperature = 3.0
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        if student.built and (teacher is None or teacher.built):
            self.built = True

    def call(self, inputs, training=False):
        """The student's logits: the Distiller predicts as its student."""
        return self.student(inputs, training=training)

    def compile(
        self,
        optimizer="rmsprop",
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=0.1,
        temperature=3.0,
        **kwargs,
    ):
        """Configures the distillation.

        Args:
            optimizer: a Keras optimizer or its name.
            metrics: a list of metrics of the student's logits against the
                labels, computed on the labeled examples only, without
                sample weights (`"sparse_categorical_crossentropy"` is the
                cross-entropy of logits, see
                `kd_keras.distillation.student_metrics`).
            student_loss_fn: hard-label loss `fn(labels, student_logits)`
                returning per-example values, or a `keras.losses.Loss`
                (a Keras cross-entropy of probabilities, `from_logits=False`,
                is refused). Default: sparse categorical cross-entropy from
                logits.
            distillation_loss_fn: soft loss `fn(teacher_logits,
                student_logits[, temperature])`, a `keras.losses.Loss`, or a
                name from `kd_keras.losses.get`. Default: `soft_target_kl`.
                A Keras loss of probabilities (`keras.losses.KLDivergence()`,
                `CategoricalCrossentropy()`) gets the softened
                probabilities and is scaled by `temperature**2`; see
                `kd_keras.losses.per_example_fn` for every case.
            alpha: weight of the hard-label loss, in `[0, 1]`, or a
                `kd_keras.schedules` schedule of such values.
            temperature: softening temperature, in
                `kd_keras.losses.TEMPERATURE_RANGE` (0.01 to 100), or a
                schedule.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...). `loss` is not
                accepted: use the two loss arguments. `steps_per_execution`
                must be 1 under a strategy of several replicas, where
                Keras's multi-step loop fails.
        """
        if kwargs.get("loss") is not None:
            raise UsageError(
                "loss: Distiller.compile takes student_loss_fn and "
                "distillation_loss_fn instead")
        self.alpha = schedules.number_or_schedule(
            alpha, "alpha", "must be in [0, 1]", low=0.0, high=1.0)
        low, high = losses_module.TEMPERATURE_RANGE
        self.temperature = schedules.number_or_schedule(
            temperature, "temperature", f"must be in [{low:g}, {high:g}]", low=low,
            high=high)
        if student_loss_fn is not None and not callable(student_loss_fn):
            raise UsageError(
                f"student_loss_fn: expected a function (labels, student_logits) -> "
                f"per-example loss, or None for the sparse cross-entropy on logits; "
                f"got {student_loss_fn!r}")
        checks.check_student_loss(student_loss_fn)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = losses_module.get(distillation_loss_fn)
        self._distillation_loss_arg = distillation_loss_fn
        self._soft_fn = losses_module.per_example_fn(self.distillation_loss_fn)
        kwargs.pop("loss", None)
        metrics = student_metrics(metrics)
        terms = {t.name for t in self.features}
        for name in metric_names(metrics):
            if name in terms:
                raise UsageError(f"metrics: {name!r} is also the name of a feature term, "
                                 "and one would overwrite the other in the history; rename "
                                 "the term (FeatureDistillation(name=...))")
        if kwargs.pop("weighted_metrics", None):
            raise UsageError(
                "weighted_metrics: not taken by Distiller.compile (metrics "
                "are computed on the labeled examples, unweighted)")
        replicas = self.distribute_strategy.num_replicas_in_sync
        steps = kwargs.get("steps_per_execution", 1)
        if replicas > 1 and steps != 1:  # It failed in `fit`, a page of TensorFlow.
            raise UsageError(f"steps_per_execution: must be 1 under a strategy of {replicas} "
                             f"replicas (Keras's multi-step loop fails there), got {steps}")
        if self._outside_graph:
            kwargs["jit_compile"] = self.teacher.check_runs(
                self.distribute_strategy, kwargs.get("jit_compile", "auto"))
        # Metrics go in as weighted metrics so that the labeled-example mask
        # can be passed as their sample weight.
        super().compile(optimizer=optimizer, weighted_metrics=metrics,
                        **kwargs)
        self._progress.log(self._schedules())

    # ------------------------------------------------------------------ losses

    def _per_example_hard(self, labels, student_logits):
        fn = self.student_loss_fn
        if fn is None:
            return keras.losses.sparse_categorical_crossentropy(
                labels, student_logits, from_logits=True
            )
        values = fn.call(labels, student_logits) if isinstance(
            fn, keras.losses.Loss) else fn(labels, student_logits)
        return _per_example(values, "student_loss_fn")

    def _regularization_share(self):
        """This replica's share of the student's regularisation losses (as
        Keras, which divides them by the number of replicas)."""
        if not self.student.losses:
            return 0.0
        return tf.add_n(self.student.losses) / float(
            tf.distribute.get_strategy().num_replicas_in_sync)

    def _student_outputs(self, x, training):
        """Returns `(student_logits, student_features)` from one pass."""
        if self._features is None:
            return self.student(x, training=training), {}
        return self._features.student_outputs(x, training=training)

    def _schedules(self):
        named = {"alpha": self.alpha, "temperature": self.temperature}
        named.update({f"{t.name}_weight": t.weight for t in self.features})
        return named

    def _loss_shares(self, x, y, student_outputs, sample_weight, training=True):
        """Returns this replica's share of `(loss, hard, soft, *features)`.

        The shares sum over replicas to the global batch's values, so the
        gradients that the optimizer sums over replicas are exact. A
        validation inside `fit` takes the schedules' values of the last step
        trained, so it logs them as the epoch's training did.
        """
        student_logits, student_features = student_outputs
        targets = split_targets(y)
        labels = targets.labels
        teacher_logits, teacher_features = batch_teacher_outputs(
            self.teacher, self._features, x, targets, self.num_classes)
        if self._features is not None and not self._features.built:
            # A hooked model, or features from the data.
            self._features.build_from(teacher_features, student_features)
        student_logits = tf.cast(student_logits, "float32")
        checks.check_static_classes(student_logits, self.num_classes,
                              "student logits")
        labels = checks.check_labels(labels, tf.shape(student_logits)[-1])
        labeled = tf.cast(labels >= 0, "float32")
        weight = tf.ones_like(labeled) if sample_weight is None else tf.cast(
            tf.reshape(sample_weight, tf.shape(labeled)), "float32")
        counts = replicas.global_sum(
            tf.stack([tf.cast(tf.size(labeled), "float32"),
                      tf.reduce_sum(labeled)])
        )
        values = self._progress.values(self._schedules(), self.optimizer.iterations,
                                       training=training)
        hard = self._per_example_hard(tf.maximum(labels, 0), student_logits)
        soft = _per_example(self._soft_fn(teacher_logits, student_logits,
                                          values["temperature"]), "distillation_loss_fn")
        hard = tf.reduce_sum(hard * labeled * weight) / tf.maximum(
            counts[1], 1.0)
        soft = tf.reduce_sum(soft * weight) / counts[0]
        alpha = values["alpha"]
        loss = alpha * hard + (1.0 - alpha) * soft
        terms = []
        if self._features is not None:
            for term, value in zip(self.features, self._features.per_example(
                    teacher_features, student_features)):
                terms.append(tf.reduce_sum(value * weight) / counts[0])
                loss += values[f"{term.name}_weight"] * terms[-1]
        return (checks.check_finite(loss, teacher_logits), hard, soft,
                *terms)

    # ------------------------------------------------------------ train / test

    def train_step(self, data):
        """One optimizer step on `alpha * hard + (1 - alpha) * soft` plus
        the weighted feature terms, the student's and the projections'
        variables only; returns the logs `fit` shows (global over replicas)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            outputs = self._student_outputs(x, training=True)
            shares = self._loss_shares(x, y, outputs, sample_weight)
            loss = shares[0] + self._regularization_share()
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)
        # Gradients do not wait for the forward checks on their own; the
        # update must (a failed check leaves the weights untouched).
        with tf.control_dependencies([loss]):
            gradients = [None if g is None else tf.identity(g)
                         for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self._update_metrics(x, y, outputs[0], sample_weight,
                                    loss, *shares[1:])

    def test_step(self, data):
        """The same losses and metrics as `train_step`, without an update."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        outputs = self._student_outputs(x, training=False)
        shares = self._loss_shares(x, y, outputs, sample_weight, training=False)
        loss = shares[0] + self._regularization_share()
        return self._update_metrics(x, y, outputs[0], sample_weight,
                                    loss, *shares[1:])

    def _update_metrics(self, x, y, student_logits, sample_weight, *shares):
        # Sum the replicas' shares into the global batch's values and weigh
        # each replica by its batch size: trackers then give the same result
        # on one device and under any strategy.
        shares = tf.unstack(replicas.global_sum(tf.stack(shares)))
        trackers = [loss_tracker(self), self.student_loss_tracker,
                    self.distillation_loss_tracker]
        if self.features:
            trackers += self.feature_loss_trackers
        batch = tf.shape(student_logits)[0]
        for tracker, value in zip(trackers, shares):
            tracker.update_state(value, sample_weight=batch)
        logs = self.compute_metrics(x, y, student_logits, sample_weight)
        return replicas.per_replica_logs(logs)

    @property
    def metrics(self):
        """Keras's metrics, plus one logger per scheduled value."""
        return super().metrics + list(self._progress.loggers.values())

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on labeled examples only, unweighted
        (as Keras's `metrics`: `sample_weight` is not applied)."""
        labels = split_targets(y).labels
        labeled = tf.cast(tf.reshape(labels, [-1]) >= 0, "float32")
        return super().compute_metrics(
            x, tf.maximum(labels, 0), y_pred, sample_weight=labeled)

    def _check_labels_given(self, x, y):
        if y is None and isinstance(x, (np.ndarray, tf.Tensor)):
            raise UsageError("y: array inputs need labels (-1 marks an unlabeled "
                             "example); or give a dataset of (x, y) batches")
        if y is not None and not isinstance(y, dict):
            checks.check_label_array(np.asarray(y), self.num_classes)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, plus up-front checks of array labels,
        one-line errors for bad labels or non-finite values, and the
        training progress that schedules follow."""
        self._check_labels_given(x, y)
        kwargs = self._progress.with_callback(
            keras.Model.fit, self, x, y, *args, **kwargs)
        if kwargs.get("class_weight") is not None and (
                y is None or isinstance(y, dict)):
            # Keras maps a dataset's labels through a table (-1, unlabeled,
            # fails deep in TensorFlow) and refuses dict targets misleadingly.
            raise UsageError("class_weight: taken with array labels only (an unlabeled "
                             "example, -1, keeps weight 1); with a dataset or dict "
                             "targets, give each example's weight as sample_weight")
        self._build_before_restoring(kwargs)
        with checks.clear_errors(), self._teacher_errors():
            return super().fit(**kwargs)

    def _build_before_restoring(self, kwargs):
        """Builds the feature projections from the element spec of a
        `tf.data.Dataset` when a `keras.callbacks.BackupAndRestore` is
        given: it restores the optimizer when training begins, before the
        first batch would build the projections that optimizer trains.
        Shapes only: the data is not read."""
        if self._features is None or self._features.built:
            return
        x = kwargs.get("x")
        if isinstance(x, tf.data.Dataset) and any(
                isinstance(c, keras.callbacks.BackupAndRestore)
                for c in kwargs.get("callbacks") or ()):
            self.build_for_batch(x.element_spec)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, with `fit`'s checks of labels and values."""
        self._check_labels_given(x, y)
        with checks.clear_errors(), self._teacher_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def _teacher_errors(self):
        if self._outside_graph:
            return self.teacher.errors()
        return contextlib.nullcontext()

    def build_for_batch(self, data_batch):
        """Builds the feature projections that only a batch can size.

        `fit` builds them on its first batch, or from the data's element
        spec before it reads any when a `keras.callbacks.BackupAndRestore`
        is given and the data is a `tf.data.Dataset`. Call this first when
        a checkpoint that holds them is restored before that batch in
        another way (arrays with `BackupAndRestore`, or your own restoring).

        Args:
            data_batch: an `(x, y)` batch as `fit` reads it, or its
                `tf.TensorSpec`s (a dataset's `element_spec`).
        """
        with self.distribute_strategy.scope():  # Its variables are the strategy's.
            self._build_for_batch(data_batch)

    def _build_for_batch(self, data_batch):
        # Under a strategy, Keras builds the optimizer before the first
        # step: projections that only a batch can size are built first.
        if self._features is not None and data_batch is not None:
            self._features.build_for_batch(data_batch, lambda x, y: (
                batch_teacher_outputs(self.teacher, self._features, x,
                                split_targets(y), self.num_classes)[1],
                self._student_outputs(x, training=False)[1]))
