"""Input checks of `Distiller`: class dimensions, labels, finiteness, and
that teachers and students give logits, not probabilities.

In-graph checks build their `Assert` only in the failing branch of a
`tf.cond`, so they cost nothing while the inputs are valid, and the weight
update waits for them. `clear_errors` turns their TensorFlow errors into
one-line Python errors.
"""

import inspect
import re

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import producer
from kd_keras.class_ids import label_problem
from kd_keras.class_ids import out_of_range
from kd_keras.distillation.losses import keras_loss_name
from kd_keras.errors import UsageError
from kd_keras.errors import first_of

LABEL_ERROR = "kd_keras: label out of range"
WHOLE_ERROR = "kd_keras: label not a whole number"
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


def final_softmax(model):
    """The name of the layer that ends `model` in a softmax, or `None`.

    A model whose output layer is `keras.layers.Softmax` (or
    `keras.ops.softmax`), an `Activation` of softmax, or any layer built with
    `activation="softmax"` (or `keras.ops.softmax`, `tf.nn.softmax`) gives
    probabilities. kd_keras distils, exports and verifies logits, so such a
    model is refused rather than taken for one that gives logits.

    Args:
        model: a `keras.Model` (anything else gives `None`).

    Returns:
        The output layer's name, or `None` when it is not a softmax (or the
        model has no single known output layer).

    Example:

    >>> x = keras.Input((4,))
    >>> final_softmax(keras.Model(x, keras.layers.Dense(3, activation="softmax", name="p")(x)))
    'p'
    >>> final_softmax(keras.Model(x, keras.layers.Dense(3)(x))) is None
    True
    """
    outputs = getattr(model, "outputs", None) if isinstance(model, keras.Model) else None
    if not outputs or len(outputs) != 1:
        return None
    layer = producer(outputs[0])
    while isinstance(layer, keras.Model) and layer is not model:  # a nested model
        inner = getattr(layer, "outputs", None)
        if not inner or len(inner) != 1:
            return None
        layer = producer(inner[0])
    # `keras.layers.Softmax`, or `keras.ops.softmax` called on a tensor
    # (an operation of the same class name).
    if isinstance(layer, keras.layers.Softmax) or type(layer).__name__ == "Softmax":
        return layer.name
    activation = getattr(layer, "activation", None)
    if activation == "softmax" or any(activation is f for f in _SOFTMAXES):
        return layer.name
    return None


# The softmax as Keras, its ops and TensorFlow spell it.
_SOFTMAXES = (keras.activations.softmax, keras.ops.softmax, tf.nn.softmax)


def looks_like_probabilities(values, atol=1e-3):
    """True when every row of `values` is non-negative and sums to 1.

    Logits of a trained model are almost never all non-negative with rows
    summing to 1; probabilities always are. With one row or one class the
    test says nothing and gives `False`.

    Args:
        values: a `[examples, classes]` array.
        atol: how far from 1 a row's sum may be.

    Returns:
        A bool.

    Example:

    >>> looks_like_probabilities(np.array([[0.2, 0.8], [0.5, 0.5]]))
    True
    >>> looks_like_probabilities(np.array([[0.2, 0.8], [1.5, -0.5]]))
    False
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 2:
        return False
    return bool(np.all(values >= 0)
                and np.all(np.abs(values.sum(axis=1) - 1.0) <= atol))


PROBABILITIES_HINT = ("kd_keras needs logits: drop the final softmax (log-probabilities "
                      "are valid logits too)")


def check_gives_logits(what, model=None, values=None):
    """Refuses a model that ends in a softmax or outputs that look like
    probabilities (see `final_softmax` and `looks_like_probabilities`).

    Args:
        what: how the message names the model (`"teacher.model: t.keras"`).
        model: a `keras.Model` to check by its output layer, or `None`.
        values: `[examples, classes]` outputs to check, or `None`.

    Raises:
        UsageError: one line naming `what` and how to fix it.

    Example:

    >>> check_gives_logits("teacher", values=np.array([[0.2, 0.8], [0.5, 0.5]]))
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: teacher: outputs probabilities (every row is non-negative and sums to 1); kd_keras needs logits: drop the final softmax (log-probabilities are valid logits too)
    """
    layer = final_softmax(model) if model is not None else None
    if layer is not None:
        raise UsageError(f"{what}: ends in a softmax (layer {layer!r}), so it outputs "
                         f"probabilities; {PROBABILITIES_HINT}")
    if values is not None and looks_like_probabilities(values):
        raise UsageError(f"{what}: outputs probabilities (every row is non-negative and "
                         f"sums to 1); {PROBABILITIES_HINT}")


def check_student_loss(fn):
    """Refuses a Keras hard-label loss that would read the student's logits
    as probabilities (a `from_logits=False` cross-entropy).

    Example:

    >>> import keras
    >>> check_student_loss(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> check_student_loss(keras.losses.SparseCategoricalCrossentropy())
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: student_loss_fn: SparseCategoricalCrossentropy(from_logits=False) reads probabilities, but the student gives logits; pass from_logits=True
    """
    if isinstance(fn, keras.losses.Loss):
        try:
            config = fn.get_config()
        except Exception:  # A custom loss without a config: nothing to read.
            return
        if config.get("from_logits") is False:
            raise UsageError(
                f"student_loss_fn: {type(fn).__name__}(from_logits=False) reads "
                "probabilities, but the student gives logits; pass from_logits=True")
        return
    name = keras_loss_name(fn)
    from_logits = inspect.signature(fn).parameters.get("from_logits") if name else None
    if from_logits is not None and from_logits.default is False:
        raise UsageError(
            f"student_loss_fn: keras.losses.{name} reads probabilities unless called "
            f"with from_logits=True, and the Distiller calls it with (labels, "
            f"student_logits); pass keras.losses.{_class_name(name)}(from_logits=True)")


def _class_name(function_name):
    """`sparse_categorical_crossentropy` -> `SparseCategoricalCrossentropy`."""
    return "".join(part.capitalize() for part in function_name.split("_"))


def check_static_classes(logits, expected, what):
    got = logits.shape[-1]
    if expected is not None and got is not None and got != expected:
        raise ValueError(
            f"{what} have {got} classes (shape {tuple(logits.shape)}) but the "
            f"{'student' if what.startswith('teacher') else 'teacher'} has "
            f"{expected}: teacher and student class dimensions must match"
        )


def check_nothing_shared(teacher, student):
    """Refuses a student that is the teacher or shares weights with it: the
    teacher is frozen, which would freeze those weights of the student too.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> check_nothing_shared(m, m)
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: student: is the teacher itself; give a separate student model
    """
    if teacher is None:
        return
    if teacher is student:
        raise UsageError("student: is the teacher itself; give a separate student model")
    teachers = {id(w) for w in teacher.weights}
    shared = [w.path for w in student.weights if id(w) in teachers]
    if shared:
        raise UsageError(
            f"student: shares the weight {first_of(shared, repr)} with the teacher, which is "
            "frozen; give the student its own layers (keras.models.clone_model)")


def check_labels(labels, num_classes):
    """Fails with the first bad label; the update waits for the check."""
    labels = tf.reshape(labels, [-1])
    if labels.dtype.is_floating:  # A fraction (or NaN) would be cut to a class id.
        labels = _check_whole(labels)
    labels = tf.cast(labels, "int32")
    bad = tf.logical_or(labels < -1, labels >= num_classes)

    def fail():  # Built in a branch: costs nothing while labels are valid.
        first = tf.boolean_mask(labels, bad)[:1]
        check = tf.debugging.Assert(
            False, [LABEL_ERROR, num_classes - 1, first])
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    return tf.cond(tf.reduce_any(bad), fail, lambda: labels)


def _check_whole(labels):
    fraction = tf.logical_not(tf.equal(labels, tf.floor(labels)))  # NaN and Inf too

    def fail():
        first = tf.cast(tf.boolean_mask(labels, fraction)[:1], "float32")
        check = tf.debugging.Assert(False, [WHOLE_ERROR, first])
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    return tf.cond(tf.reduce_any(fraction), fail, lambda: labels)


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
    """Fails on the first array label that is not a class id or -1
    (`kd_keras.class_ids.label_problem`).

    Args:
        labels: an array of labels (`-1` = unlabeled).
        num_classes: the number of classes, or `None` to check `>= -1` only.

    Raises:
        UsageError: naming the first bad label and its example.

    Example:

    >>> check_label_array(np.array([0, 1, -1]), num_classes=2)
    >>> check_label_array(np.array([0, 2, 3]), num_classes=2)
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: y: label 2 (example 1) is out of range: labels must be -1 (unlabeled) or in [0, 1]
    """
    problem = label_problem(labels, num_classes)
    if problem:
        raise UsageError(f"y: {problem}")


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
            raise UsageError(f"y: {out_of_range(bad, int(top) + 1)}") from None
        if WHOLE_ERROR in message:
            bad = re.findall(r"\[([^\]]*)\]", message.split(WHOLE_ERROR, 1)[1])[:1]
            raise UsageError(f"y: label {bad[0] if bad else '?'} is not a whole number: "
                             "labels are integer class ids (-1 = unlabeled)") from None
        if NONFINITE_ERROR in message:
            which = re.findall(r"\[(teacher logits|loss)\]", message)
            raise FloatingPointError(
                f"non-finite {which[0] if which else 'loss'} (NaN or Inf): "
                "training stopped before the update (check the teacher, the "
                "inputs and the learning rate)") from None
        return False
