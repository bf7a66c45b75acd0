"""Input checks of `Distiller`: class dimensions, labels, finiteness.

In-graph checks build their `Assert` only in the failing branch of a
`tf.cond`, so they cost nothing while the inputs are valid, and the weight
update waits for them. `clear_errors` turns their TensorFlow errors into
one-line Python errors.
"""

import re

import keras
import numpy as np
import tensorflow as tf

LABEL_ERROR = "kd_keras: label out of range"
NONFINITE_ERROR = "kd_keras: non-finite"


def output_classes(model):
    try:
        shape = model.output_shape if isinstance(model, keras.Model) else None
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, (list, dict)) or shape is None:
        return None
    return shape[-1]


def check_class_dims(teacher, student):
    s = output_classes(student)
    t = output_classes(teacher) if teacher is not None else None
    if s is not None and t is not None and s != t:
        raise ValueError(
            f"Teacher and student disagree on the number of classes: teacher "
            f"output shape {teacher.output_shape}, student output shape "
            f"{student.output_shape}"
        )
    return s if s is not None else t


def check_static_classes(logits, expected, what):
    got = logits.shape[-1]
    if expected is not None and got is not None and got != expected:
        raise ValueError(
            f"{what} have {got} classes (shape {tuple(logits.shape)}) but the "
            f"{'student' if what.startswith('teacher') else 'teacher'} has "
            f"{expected}: teacher and student class dimensions must match"
        )


def check_labels(labels, num_classes):
    """Fails with the first bad label; the update waits for the check."""
    labels = tf.cast(tf.reshape(labels, [-1]), "int32")
    bad = tf.logical_or(labels < -1, labels >= num_classes)

    def fail():  # Built in a branch: costs nothing while labels are valid.
        first = tf.boolean_mask(labels, bad)[:1]
        check = tf.debugging.Assert(
            False, [LABEL_ERROR, num_classes - 1, first])
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    return tf.cond(tf.reduce_any(bad), fail, lambda: labels)


def check_finite(loss, teacher_logits):
    """Stops before the update when the loss is NaN or Inf, naming the
    teacher's logits when they are the cause.

    XLA compiles `Assert` to a no-op, so with `jit_compile=True` this check
    (and the label check) do not run; array labels are still checked up front
    by `fit`."""

    def fail():
        teacher_ok = tf.reduce_all(tf.math.is_finite(teacher_logits))
        check_teacher = tf.debugging.Assert(
            teacher_ok, [NONFINITE_ERROR, "[teacher logits]"])
        with tf.control_dependencies([check_teacher]):
            check = tf.debugging.Assert(False, [NONFINITE_ERROR, "[loss]"])
        with tf.control_dependencies([check]):
            return tf.identity(loss)

    return tf.cond(tf.math.is_finite(loss), lambda: loss, fail)


def check_label_array(labels, num_classes):
    """Fails on the first array label outside `[-1, num_classes)`.

    Args:
        labels: a NumPy array of labels (`-1` = unlabeled); non-integer
            arrays are not checked.
        num_classes: the number of classes, or `None` to check `>= -1` only.

    Raises:
        ValueError: naming the first bad label and the allowed range.

    Example:

    >>> check_label_array(np.array([0, 1, -1]), num_classes=2)
    >>> check_label_array(np.array([0, 2, 3]), num_classes=2)
    Traceback (most recent call last):
    ...
    ValueError: Label 2 is out of range: labels must be -1 (unlabeled) or in [0, 1]
    """
    if labels.dtype.kind not in "iu" or labels.size == 0:
        if labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype("int64")
        else:
            return
    labels = labels.reshape(-1)
    bad = labels[(labels < -1) | (
        labels >= num_classes if num_classes else False)]
    if bad.size:
        raise ValueError(
            f"Label {bad[0]} is out of range: labels must be -1 (unlabeled) "
            f"or in [0, {num_classes - 1}]" if num_classes else
            f"Label {bad[0]} is out of range: labels must be >= -1"
        )


class clear_errors:  # noqa: N801 (used as a context manager)
    """Turns the in-graph checks' errors into one-line Python errors."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None or not issubclass(exc_type, tf.errors.OpError):
            return False
        message = exc.message if hasattr(exc, "message") else str(exc)
        if LABEL_ERROR in message:
            top, bad = re.findall(r"\[(-?\d+)\]", message)[:2]
            raise ValueError(
                f"Label {bad} is out of range: labels must be -1 (unlabeled) "
                f"or in [0, {top}]") from None
        if NONFINITE_ERROR in message:
            which = re.findall(r"\[(teacher logits|loss)\]", message)
            raise FloatingPointError(
                f"non-finite {which[0] if which else 'loss'} (NaN or Inf): "
                "training stopped before the update (check the teacher, the "
                "inputs and the learning rate)") from None
        return False
