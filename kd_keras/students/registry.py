"""Looking up students by built-in name or `"package.module:function"`."""

import importlib
import inspect

import keras

from kd_keras.errors import ConfigError

from kd_keras.students.bigru import bigru
from kd_keras.students.dilated_cnn import dilated_cnn
from kd_keras.students.mlp import mlp
from kd_keras.students.small_cnn import small_cnn
from kd_keras.students.text_cnn import text_cnn
from kd_keras.students.tiny_bert import tiny_bert

BUILTIN_STUDENTS = {
    "text_cnn": text_cnn,
    "dilated_cnn": dilated_cnn,
    "bigru": bigru,
    "tiny_bert": tiny_bert,
    "mlp": mlp,
    "small_cnn": small_cnn,
}
TEXT_STUDENTS = ("text_cnn", "dilated_cnn", "bigru", "tiny_bert", "mlp")


def get_student(architecture):
    """Returns the builder function named by `architecture`.

    Args:
        architecture: a built-in name (`text_cnn`, `dilated_cnn`, `bigru`,
            `tiny_bert`, `mlp`, `small_cnn`) or `"package.module:function"`.

    Returns:
        A callable `(num_classes, vocab_size=..., sequence_length=...,
        **kwargs) -> keras.Model`.

    Raises:
        ConfigError: (a `ValueError`) naming `student.architecture` for an
            unknown name, a module that cannot be imported, a missing function,
            or a callable that cannot be called as a builder (its signature).

    Example:

    >>> get_student("text_cnn").__name__
    'text_cnn'
    """
    if not isinstance(architecture, str) or not architecture:
        raise ConfigError(
            f"student.architecture: must be a name or 'package.module:function', "
            f"got {architecture!r}"
        )
    if architecture in BUILTIN_STUDENTS:
        return BUILTIN_STUDENTS[architecture]
    if ":" not in architecture:
        raise ConfigError(
            f"student.architecture: unknown student {architecture!r}; built-ins: "
            f"{', '.join(BUILTIN_STUDENTS)}, or 'package.module:function'"
        )
    module_name, _, function_name = architecture.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as e:  # An empty or relative name.
        raise ConfigError(
            f"student.architecture: cannot import module {module_name!r} ({e})"
        ) from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ConfigError(
            f"student.architecture: module {module_name!r} has no function "
            f"{function_name!r}"
        )
    _check_signature(builder, architecture)
    return builder


def _check_signature(builder, architecture):
    """Refuses a callable that cannot be called as a student builder is:
    `builder(num_classes, vocab_size=..., sequence_length=...)`."""
    wanted = "(num_classes, vocab_size=..., sequence_length=..., **options) -> keras.Model"
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):  # A built-in function or type.
        raise ConfigError(
            f"student.architecture: {architecture}: not a student builder (a built-in with no "
            f"Python signature); a builder is a Python function {wanted}") from None
    try:
        signature.bind(2, vocab_size=2, sequence_length=8)
    except TypeError:
        raise ConfigError(
            f"student.architecture: {architecture}: not a student builder: it takes "
            f"{signature}, a builder takes {wanted}") from None


def check_student(model, architecture, num_classes):
    """Refuses what a builder returned unless it is a `keras.Model` with
    `num_classes` logits.

    Args:
        model: what the builder returned.
        architecture: the `student.architecture` value, for messages.
        num_classes: the number of classes of the data.

    Returns:
        `model`.

    Raises:
        ConfigError: naming `student.architecture`.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> check_student(m, "my.students:cnn", 2)
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: student.architecture: my.students:cnn: returns 3 logits but the data has 2 classes
    """
    if not isinstance(model, keras.Model):
        raise ConfigError(f"student.architecture: {architecture}: did not return a "
                          f"keras.Model (got {type(model).__name__})")
    outputs = getattr(model, "outputs", None)  # None for a subclassed model
    if outputs is not None:
        if len(outputs) != 1:
            raise ConfigError(f"student.architecture: {architecture}: returns a model with "
                              f"{len(outputs)} outputs; a student has one, the logits")
        check_logits_shape(outputs[0].shape, architecture, num_classes)
    return model


def check_logits_shape(shape, architecture, num_classes):
    """Refuses logits whose shape is not `[batch, num_classes]`.

    Raises:
        ConfigError: naming `student.architecture`.
    """
    shape = tuple(shape)
    if len(shape) != 2:
        raise ConfigError(f"student.architecture: {architecture}: returns outputs of shape "
                          f"{list(shape)}; a student returns [batch, num_classes] logits")
    if shape[-1] is not None and shape[-1] != num_classes:
        raise ConfigError(f"student.architecture: {architecture}: returns {shape[-1]} logits "
                          f"but the data has {num_classes} classes")


def build_student(architecture, num_classes, **kwargs):
    """Builds a student by name, and checks it (`check_student`); see
    `get_student`.

    Example:

    >>> m = build_student("mlp", 3, input_shape=(4,), hidden_units=(8,))
    >>> m.output.shape
    (None, 3)
    """
    return check_student(get_student(architecture)(num_classes, **kwargs), architecture,
                         num_classes)
