"""Per-example losses between a teacher's and a student's intermediate
outputs (the `loss` of `kd_keras.FeatureDistillation`).

Each function takes `(teacher_feature, student_feature)` of the same shape
`[batch, ...]` and returns a float32 tensor `[batch]`:

- `feature_mse`: the mean over the feature's elements of the squared
  difference;
- `feature_cosine`: `1 - cos` between the two vectors along the last axis,
  averaged over the other non-batch axes (e.g. the tokens);
- `attention_kl`: `KL(teacher || student)` between attention probabilities
  `[batch, heads, queries, keys]`, summed over the keys and averaged over
  heads and queries.

Example:

>>> import numpy as np
>>> t = np.array([[[1.0, 0.0], [0.0, 2.0]]])
>>> float(feature_mse(t, np.zeros_like(t))[0])
1.25
>>> float(feature_cosine(t, 3.0 * t)[0])
0.0
"""

import keras
from keras import ops

from kd_keras.errors import UsageError


def _float32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


def per_example(values, what=None):
    """Averages `values` over every axis but the first, in float32.

    Args:
        values: a tensor `[batch, ...]` (or `[batch]`).
        what: the loss that gave `values`, named in the error; None for
            kd_keras's own losses.

    Returns:
        A float32 tensor `[batch]`.

    Raises:
        UsageError: `values` is one number for the whole batch. Its mean
            would weigh unlabeled examples (read as class 0) and ignore
            sample weights, and under a strategy each replica's.

    Example:

    >>> import numpy as np
    >>> tuple(per_example(np.ones((2, 3)), "my_loss").shape)
    (2,)
    >>> per_example(np.float32(0.5), "my_loss")
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: my_loss: returned one number for the batch; return one value per example ([batch]), e.g. with keras.losses.Reduction None or a function without the final mean
    """
    if len(getattr(values, "shape", ())) == 0:
        raise UsageError(
            f"{what or 'loss'}: returned one number for the batch; return one value per "
            "example ([batch]), e.g. with keras.losses.Reduction None or a function "
            "without the final mean")
    values = _float32(values)
    if len(values.shape) > 1:
        values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
    return values


@keras.saving.register_keras_serializable(package="kd_keras")
def feature_mse(teacher_feature, student_feature):
    """Mean squared difference over the feature's elements, per example.

    Args:
        teacher_feature: tensor `[batch, ...]`.
        student_feature: tensor of the same shape.

    Returns:
        A float32 tensor `[batch]`.
    """
    diff = _float32(student_feature) - _float32(teacher_feature)
    return per_example(ops.square(diff))


@keras.saving.register_keras_serializable(package="kd_keras")
def feature_cosine(teacher_feature, student_feature):
    """`1 - cosine similarity` along the last axis, averaged over the other
    non-batch axes, per example.

    Args:
        teacher_feature: tensor `[batch, ..., width]`.
        student_feature: tensor of the same shape.

    Returns:
        A float32 tensor `[batch]`, in `[0, 2]`.
    """
    t = _float32(teacher_feature)
    s = _float32(student_feature)
    eps = 1e-12
    t = t / ops.sqrt(ops.maximum(ops.sum(ops.square(t), -1, keepdims=True),
                                 eps))
    s = s / ops.sqrt(ops.maximum(ops.sum(ops.square(s), -1, keepdims=True),
                                 eps))
    return per_example(1.0 - ops.sum(t * s, axis=-1))


def group_heads(attention, heads):
    """Averages the heads of `attention` `[batch, H, q, k]` in `heads`
    consecutive groups (a mean of distributions is a distribution).

    Args:
        attention: attention probabilities with `H` heads.
        heads: the number of heads wanted; must divide `H`.

    Returns:
        A tensor `[batch, heads, q, k]`.
    """
    have = attention.shape[1]
    if have == heads:
        return attention
    if have is None or heads is None or have % heads:
        raise UsageError(
            f"attention: the teacher's {have} heads cannot be grouped into "
            f"the student's {heads}")
    shape = ops.shape(attention)
    grouped = ops.reshape(attention, (shape[0], heads, have // heads,
                                      shape[2], shape[3]))
    return ops.mean(grouped, axis=2)


@keras.saving.register_keras_serializable(package="kd_keras")
def attention_kl(teacher_attention, student_attention):
    """KL divergence between attention probabilities, per head, averaged.

    `KL(t || s) = sum_k t_k (log t_k - log s_k)` for each head and query
    position, then the mean over heads and queries. Masked keys (probability
    0 in both) contribute 0. When the teacher has more heads than the
    student, each group of `H_t / H_s` consecutive teacher heads is averaged
    first (`group_heads`).

    Args:
        teacher_attention: tensor `[batch, H_t, queries, keys]`.
        student_attention: tensor `[batch, H_s, queries, keys]`.

    Returns:
        A float32 tensor `[batch]`.
    """
    s = _float32(student_attention)
    t = group_heads(_float32(teacher_attention), s.shape[1])
    tiny = 1e-30  # keeps log finite where a student probability underflows
    kl = ops.sum(t * (ops.log(ops.maximum(t, tiny))
                      - ops.log(ops.maximum(s, tiny))), axis=-1)
    return per_example(kl)


LOSSES = {
    "mse": feature_mse,
    "cosine": feature_cosine,
    "attention_kl": attention_kl,
}
NAMES = tuple(sorted(LOSSES))


def get(identifier, what="loss"):
    """Returns `fn(teacher_feature, student_feature)` giving per-example
    values.

    Args:
        identifier: a name in `NAMES`, a `keras.losses.Loss` (its unreduced
            values are used) or a callable `fn(teacher_feature,
            student_feature)` returning one value per example (or more axes,
            averaged).
        what: the argument's name, for error messages.

    Returns:
        A callable returning a float32 tensor `[batch]`.

    Raises:
        UsageError: naming `what` and the unknown loss.
    """
    if isinstance(identifier, str):
        if identifier not in LOSSES:
            raise UsageError(f"{what}: unknown loss {identifier!r} (known: "
                             f"{', '.join(NAMES)}, or a callable)")
        return LOSSES[identifier]
    if isinstance(identifier, type):
        raise UsageError(f"{what}: got the class {identifier.__name__}; give an instance "
                         f"({identifier.__name__}()) or a function")
    if isinstance(identifier, keras.losses.Loss):
        return lambda t, s: per_example(identifier.call(t, s), what)
    if callable(identifier):
        return lambda t, s: per_example(identifier(t, s), what)
    raise UsageError(f"{what}: expected a loss name ({', '.join(NAMES)}) or "
                     f"a callable, got {identifier!r}")


__all__ = ["LOSSES", "NAMES", "attention_kl", "feature_cosine", "feature_mse",
           "get", "group_heads", "per_example"]
