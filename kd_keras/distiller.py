"""`Distiller`: a `keras.Model` that trains a student to imitate a teacher."""

import keras
import numpy as np
import tensorflow as tf

from kd_keras import checks
from kd_keras import losses as losses_module
from kd_keras.distribute import workarounds
from kd_keras.errors import UsageError

LABELS_KEY = "labels"
TEACHER_LOGITS_KEY = "teacher_logits"
_TEACHER_SHAPE_ERROR = "kd_keras: teacher logits shape"
_CACHE_HINT = ("cache its outputs with kd_keras.cache.cache_teacher_outputs "
               "and pass teacher=None")


@keras.saving.register_keras_serializable(package="kd_keras")
class Distiller(workarounds.DistributedFitMixin, keras.Model):
    """Trains `student` on a mix of hard labels and the teacher's soft targets.

    The loss of a batch is

        alpha * student_loss + (1 - alpha) * distillation_loss

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

    Under `tf.distribute` the counts are taken over the *global* batch, so one
    device and N replicas give the same loss, gradients and history.

    The student's regularisation losses (`student.losses`) are added to
    `loss` in training and in `evaluate` (hence `val_loss`), as Keras does.

    The teacher is frozen and always runs with `training=False`. `call()` is
    the student's forward pass. The teacher may be `None`: then every batch's
    targets must carry the teacher's logits, as a dict
    `{"labels": y, "teacher_logits": logits}` (what
    `kd_keras.cache.TeacherCache.as_dataset` yields). Such a dict also
    overrides a teacher that is set.

    A `kd_keras.teachers.Teacher` (what `kd_keras.teachers.load_teacher`
    returns) is accepted too: one with `in_graph=True` runs its `model` in
    the graph; any other (ONNX, `transformers`) runs through
    `tf.numpy_function` in the process of each replica (one device,
    `MirroredStrategy`, and each worker of `MultiWorkerMirroredStrategy`).
    XLA (`jit_compile=True`), TPUs and parameter servers cannot call it:
    there, cache its outputs first (`kd_keras.cache.cache_teacher_outputs`).

    Args:
        teacher: a `keras.Model` (or layer) that outputs logits, a
            `kd_keras.teachers.Teacher`, or `None`.
        student: a `keras.Model` that outputs logits.
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

    def __init__(self, teacher, student, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(student, keras.layers.Layer):
            raise UsageError(
                "student: expected a keras.Model, got "
                f"{type(student).__name__}")
        teacher = _teacher_layer(teacher, checks.output_classes(student))
        if teacher is not None:
            teacher.trainable = False
        self.teacher = teacher
        self.student = student
        self.num_classes = checks.check_class_dims(teacher, student)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(
            name="distillation_loss"
        )
        self.alpha = 0.1
        self.temperature = 3.0
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        if student.built and (teacher is None or teacher.built):
            self.built = True

    def call(self, inputs, training=False):
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
            metrics: metrics of the student's logits against the labels,
                computed on the labeled examples only, without sample
                weights.
            student_loss_fn: hard-label loss `fn(labels, student_logits)`
                returning per-example values, or a `keras.losses.Loss`.
                Default: sparse categorical cross-entropy from logits.
            distillation_loss_fn: soft loss `fn(teacher_logits,
                student_logits[, temperature])`, a `keras.losses.Loss`, or a
                name from `kd_keras.losses.get`. Default: `soft_target_kl`.
                A Keras loss of probabilities (`keras.losses.KLDivergence()`,
                `CategoricalCrossentropy()`) gets the softened
                probabilities and is scaled by `temperature**2`; see
                `kd_keras.losses.per_example_fn` for every case.
            alpha: weight of the hard-label loss, in `[0, 1]`.
            temperature: softening temperature, `> 0`.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...). `loss` is not
                accepted: use the two loss arguments.
        """
        if kwargs.get("loss") is not None:
            raise UsageError(
                "loss: Distiller.compile takes student_loss_fn and "
                "distillation_loss_fn instead")
        if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise UsageError(f"alpha: must be in [0, 1], got {alpha!r}")
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise UsageError(f"temperature: must be > 0, got {temperature!r}")
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.student_loss_fn = student_loss_fn
        self.distillation_loss_fn = losses_module.get(distillation_loss_fn)
        self._soft_fn = losses_module.per_example_fn(self.distillation_loss_fn)
        kwargs.pop("loss", None)
        if kwargs.pop("weighted_metrics", None):
            raise UsageError(
                "weighted_metrics: not taken by Distiller.compile (metrics "
                "are computed on the labeled examples, unweighted)")
        if isinstance(self.teacher, _NumpyTeacher):
            kwargs["jit_compile"] = self.teacher.check_runs(
                self.distribute_strategy, kwargs.get("jit_compile", "auto"))
        # Metrics go in as weighted metrics so that the labeled-example mask
        # can be passed as their sample weight.
        super().compile(optimizer=optimizer, weighted_metrics=metrics,
                        **kwargs)
        self._compile_config.config.update(
            metrics=metrics,
            weighted_metrics=None,
            alpha=self.alpha,
            temperature=self.temperature,
            student_loss_fn=student_loss_fn,
            distillation_loss_fn=distillation_loss_fn,
        )

    # ------------------------------------------------------------------ losses

    def _per_example_hard(self, labels, student_logits):
        fn = self.student_loss_fn
        if fn is None:
            return keras.losses.sparse_categorical_crossentropy(
                labels, student_logits, from_logits=True
            )
        values = fn.call(labels, student_logits) if isinstance(
            fn, keras.losses.Loss) else fn(labels, student_logits)
        return _per_example(values)

    def _per_example_soft(self, teacher_logits, student_logits):
        return _per_example(self._soft_fn(
            teacher_logits, student_logits, self.temperature))

    def _regularization_share(self):
        """This replica's share of the student's regularisation losses (as
        Keras, which divides them by the number of replicas)."""
        if not self.student.losses:
            return 0.0
        return tf.add_n(self.student.losses) / float(
            tf.distribute.get_strategy().num_replicas_in_sync)

    def _split_targets(self, y):
        """Returns `(labels, teacher_logits or None)` from a batch's `y`."""
        if isinstance(y, dict):
            if LABELS_KEY not in y:
                raise UsageError(
                    f"y: targets given as a dict need the key {LABELS_KEY!r} "
                    f"(and optionally {TEACHER_LOGITS_KEY!r}), got keys "
                    f"{sorted(y)}")
            return y[LABELS_KEY], y.get(TEACHER_LOGITS_KEY)
        return y, None

    def _teacher_logits(self, x, y_teacher):
        if y_teacher is None:
            if self.teacher is None:
                raise UsageError(
                    "teacher: None, so each batch's targets must be a dict "
                    f"{{'{LABELS_KEY}': ..., '{TEACHER_LOGITS_KEY}': ...}} "
                    "(see kd_keras.cache.TeacherCache.as_dataset)")
            y_teacher = self.teacher(x, training=False)
        logits = tf.stop_gradient(tf.cast(y_teacher, "float32"))
        checks.check_static_classes(logits, self.num_classes, "teacher logits")
        return logits

    def _loss_shares(self, x, y, student_logits, sample_weight):
        """Returns this replica's share of `(loss, hard, soft)`.

        The shares sum over replicas to the global batch's values, so the
        gradients that the optimizer sums over replicas are exact.
        """
        labels, teacher_logits = self._split_targets(y)
        teacher_logits = self._teacher_logits(x, teacher_logits)
        student_logits = tf.cast(student_logits, "float32")
        checks.check_static_classes(student_logits, self.num_classes,
                              "student logits")
        labels = checks.check_labels(labels, tf.shape(student_logits)[-1])
        labeled = tf.cast(labels >= 0, "float32")
        weight = tf.ones_like(labeled) if sample_weight is None else tf.cast(
            tf.reshape(sample_weight, tf.shape(labeled)), "float32")
        counts = workarounds.global_sum(
            tf.stack([tf.cast(tf.size(labeled), "float32"),
                      tf.reduce_sum(labeled)])
        )
        hard = self._per_example_hard(tf.maximum(labels, 0), student_logits)
        soft = self._per_example_soft(teacher_logits, student_logits)
        hard = tf.reduce_sum(hard * labeled * weight) / tf.maximum(
            counts[1], 1.0)
        soft = tf.reduce_sum(soft * weight) / counts[0]
        loss = self.alpha * hard + (1.0 - self.alpha) * soft
        return checks.check_finite(loss, teacher_logits), hard, soft

    # ------------------------------------------------------------ train / test

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            student_logits = self.student(x, training=True)
            loss, hard, soft = self._loss_shares(x, y, student_logits,
                                                 sample_weight)
            loss += self._regularization_share()
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(scaled_loss, weights)
        # Gradients do not wait for the forward checks on their own; the
        # update must (a failed check leaves the weights untouched).
        with tf.control_dependencies([loss]):
            gradients = [None if g is None else tf.identity(g)
                         for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, weights))
        return self._update_metrics(x, y, student_logits, sample_weight,
                                    loss, hard, soft)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_logits = self.student(x, training=False)
        loss, hard, soft = self._loss_shares(x, y, student_logits, sample_weight)
        loss += self._regularization_share()
        return self._update_metrics(x, y, student_logits, sample_weight,
                                    loss, hard, soft)

    def _update_metrics(self, x, y, student_logits, sample_weight, *shares):
        # Sum the replicas' shares into the global batch's values and weigh
        # each replica by its batch size: trackers then give the same result
        # on one device and under any strategy.
        loss, hard, soft = tf.unstack(workarounds.global_sum(tf.stack(shares)))
        batch = tf.shape(student_logits)[0]
        self._loss_tracker.update_state(loss, sample_weight=batch)
        self.student_loss_tracker.update_state(hard, sample_weight=batch)
        self.distillation_loss_tracker.update_state(soft, sample_weight=batch)
        logs = self.compute_metrics(x, y, student_logits, sample_weight)
        return workarounds.per_replica_logs(logs)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on labeled examples only, unweighted
        (as Keras's `metrics`: `sample_weight` is not applied)."""
        labels, _ = self._split_targets(y)
        labeled = tf.cast(tf.reshape(labels, [-1]) >= 0, "float32")
        return super().compute_metrics(
            x, tf.maximum(labels, 0), y_pred, sample_weight=labeled)

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, plus up-front checks of array labels and
        one-line errors for bad labels or non-finite values."""
        if y is not None and not isinstance(y, dict):
            checks.check_label_array(np.asarray(y), self.num_classes)
        with checks.clear_errors(), _teacher_errors(self.teacher):
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        if y is not None and not isinstance(y, dict):
            checks.check_label_array(np.asarray(y), self.num_classes)
        with checks.clear_errors(), _teacher_errors(self.teacher):
            return super().evaluate(x, y, *args, **kwargs)

    # ----------------------------------------------------------- serialization

    def get_config(self):
        if isinstance(self.teacher, _NumpyTeacher):
            raise UsageError(
                f"teacher: a {self.teacher.source_name} cannot be saved with "
                "the Distiller; save distiller.student, or distill with "
                "teacher=None from a cache")
        config = super().get_config()
        config.update(
            teacher=(None if self.teacher is None else
                     keras.saving.serialize_keras_object(self.teacher)),
            student=keras.saving.serialize_keras_object(self.student),
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        teacher = config.pop("teacher")
        student = config.pop("student")
        if teacher is not None:
            teacher = keras.saving.deserialize_keras_object(
                teacher, custom_objects=custom_objects)
        student = keras.saving.deserialize_keras_object(
            student, custom_objects=custom_objects)
        return cls(teacher=teacher, student=student, **config)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        for key in ("loss", "loss_weights"):
            if config.get(key) is None:
                config.pop(key, None)
        self.compile(**config)
        if self.built and hasattr(self, "optimizer"):
            self.optimizer.build(self.trainable_variables)


def _per_example(values):
    values = tf.cast(values, "float32")
    if values.shape.rank and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def _teacher_layer(teacher, num_classes):
    """The layer that computes `teacher`'s logits in `train_step`."""
    if teacher is None or isinstance(teacher, keras.layers.Layer):
        return teacher
    from kd_keras.teachers.base import Teacher  # Loads keras_hub: lazily.

    if not isinstance(teacher, Teacher):
        raise UsageError(
            "teacher: expected a keras.Model, a kd_keras.teachers.Teacher or "
            f"None, got {type(teacher).__name__} (load files with "
            "kd_keras.teachers.load_teacher)")
    if teacher.in_graph and isinstance(teacher.model, keras.layers.Layer):
        return teacher.model
    return _NumpyTeacher(teacher, num_classes)


class _NumpyTeacher(keras.layers.Layer):
    """Runs a teacher outside the graph (`Teacher.predict_on_batch`) through
    `tf.numpy_function`, with the declared output shape `[batch,
    num_classes]`."""

    # Strategies whose replicas run in processes that can call back into
    # Python (TPUs cannot; parameter-server workers are remote).
    _UNSUPPORTED = tuple(
        cls for cls in (
            getattr(tf.distribute, "TPUStrategy", None),
            getattr(tf.distribute.experimental, "TPUStrategy", None),
            getattr(tf.distribute, "ParameterServerStrategy", None),
            getattr(tf.distribute.experimental, "ParameterServerStrategy",
                    None),
        ) if cls is not None)

    def __init__(self, teacher, num_classes, **kwargs):
        kwargs.setdefault("name", "teacher")
        super().__init__(trainable=False, **kwargs)
        self.source = teacher
        self.source_name = type(teacher).__name__
        self.num_classes = num_classes
        self.built = True  # No weights.

    def check_runs(self, strategy, jit_compile):
        """Returns the `jit_compile` to use, or raises a `UsageError` when
        the teacher cannot run in the compiled step."""
        if isinstance(strategy, self._UNSUPPORTED):
            raise UsageError(
                f"teacher: a {self.source_name} runs outside TensorFlow, which "
                f"{type(strategy).__name__} cannot call; {_CACHE_HINT}")
        if jit_compile is True:
            raise UsageError(
                f"jit_compile: a {self.source_name} teacher runs outside "
                f"TensorFlow, which XLA cannot compile; pass "
                f"jit_compile=False or {_CACHE_HINT}")
        return False

    def call(self, inputs, training=False):
        flat = tf.nest.flatten(inputs)
        structure = tf.nest.map_structure(lambda _: 0, inputs)

        def run(*arrays):
            logits = self.source.predict_on_batch(
                tf.nest.pack_sequence_as(structure, list(arrays)))
            logits = np.asarray(logits, dtype=np.float32)
            want = (len(arrays[0]), self.num_classes or logits.shape[-1])
            if logits.shape != want:
                raise ValueError(
                    f"{_TEACHER_SHAPE_ERROR} {logits.shape}, expected {want}")
            return logits

        logits = tf.numpy_function(run, flat, tf.float32, name="teacher")
        logits.set_shape([flat[0].shape[0], self.num_classes])
        return logits


class _teacher_errors:  # noqa: N801 (used as a context manager)
    """Turns a wrong logits shape from a `_NumpyTeacher` into a one-line
    `UsageError`."""

    def __init__(self, teacher):
        self.teacher = teacher

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if (exc_type is None or not issubclass(exc_type, tf.errors.OpError)
                or _TEACHER_SHAPE_ERROR not in str(exc)):
            return False
        found = str(exc).split(_TEACHER_SHAPE_ERROR, 1)[1].splitlines()[0]
        raise UsageError(
            f"teacher: the {self.teacher.source_name} returned logits of "
            f"shape{found.rstrip()} (the student's classes)") from None
