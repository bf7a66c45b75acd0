"""Teachers that do not run in the TensorFlow graph, made callable from it.

`Distiller` runs a teacher inside its compiled `train_step`. A
`kd_keras.teachers.Teacher` with `in_graph=True` gives its `keras.Model`;
any other (ONNX, `transformers`) is wrapped by `NumpyFunctionTeacher`, which
calls `Teacher.predict_on_batch` through `tf.numpy_function` in the process
of each replica. XLA, TPUs and parameter servers cannot call back into
Python: there, cache the teacher's outputs first
(`kd_keras.cache.cache_teacher_outputs`).
"""

import keras
import numpy as np
import tensorflow as tf

from kd_keras.errors import UsageError

CACHE_HINT = ("cache its outputs with kd_keras.cache.cache_teacher_outputs "
              "and pass teacher=None")
_SHAPE_ERROR = "kd_keras: teacher logits shape"


def graph_teacher(teacher, num_classes):
    """The layer that computes `teacher`'s logits in a `train_step`.

    Args:
        teacher: `None`, a `keras.layers.Layer` or a
            `kd_keras.teachers.Teacher`.
        num_classes: the student's number of classes (the logits' width), or
            `None` when unknown.

    Returns:
        `None`, a `keras.layers.Layer`, or a `NumpyFunctionTeacher`.

    Raises:
        UsageError: `teacher` is of another type.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> graph_teacher(model, 3) is model
    True
    """
    if teacher is None or isinstance(teacher, keras.layers.Layer):
        return teacher
    from kd_keras.teachers.base import Teacher

    if not isinstance(teacher, Teacher):
        raise UsageError(
            "teacher: expected a keras.Model, a kd_keras.teachers.Teacher or "
            f"None, got {type(teacher).__name__} (load files with "
            "kd_keras.teachers.load_teacher)")
    if teacher.in_graph and isinstance(teacher.model, keras.layers.Layer):
        return teacher.model
    return NumpyFunctionTeacher(teacher, num_classes)


class NumpyFunctionTeacher(keras.layers.Layer):
    """Runs a teacher outside the graph (`Teacher.predict_on_batch`) through
    `tf.numpy_function`, with the declared output shape `[batch,
    num_classes]`.

    Args:
        teacher: a `kd_keras.teachers.Teacher`.
        num_classes: the logits' width, or `None` to take the teacher's.
    """

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
                f"{type(strategy).__name__} cannot call; {CACHE_HINT}")
        if jit_compile is True:
            raise UsageError(
                f"jit_compile: a {self.source_name} teacher runs outside "
                f"TensorFlow, which XLA cannot compile; pass "
                f"jit_compile=False or {CACHE_HINT}")
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
                raise ValueError(f"{_SHAPE_ERROR} {logits.shape}, expected "
                                 f"{want}")
            return logits

        logits = tf.numpy_function(run, flat, tf.float32, name="teacher")
        logits.set_shape([flat[0].shape[0], self.num_classes])
        return logits

    def errors(self):
        """A context manager that turns a wrong logits shape into a one-line
        `UsageError`."""
        return _ShapeErrors(self.source_name)


class _ShapeErrors:
    def __init__(self, source_name):
        self.source_name = source_name

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if (exc_type is None or not issubclass(exc_type, tf.errors.OpError)
                or _SHAPE_ERROR not in str(exc)):
            return False
        found = str(exc).split(_SHAPE_ERROR, 1)[1].splitlines()[0]
        raise UsageError(
            f"teacher: the {self.source_name} returned logits of "
            f"shape{found.rstrip()} (the student's classes)") from None
