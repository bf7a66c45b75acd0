"""Looking up students by built-in name or `"package.module:function"`."""

import importlib

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
            unknown name, a module that cannot be imported or a missing function.

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
    except ImportError as e:
        raise ConfigError(
            f"student.architecture: cannot import module {module_name!r} ({e})"
        ) from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ConfigError(
            f"student.architecture: module {module_name!r} has no function "
            f"{function_name!r}"
        )
    return builder


def build_student(architecture, num_classes, **kwargs):
    """Builds a student by name; see `get_student`.

    Example:

    >>> m = build_student("mlp", 3, input_shape=(4,), hidden_units=(8,))
    >>> m.output.shape
    (None, 3)
    """
    return get_student(architecture)(num_classes, **kwargs)
