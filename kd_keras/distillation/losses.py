"""Distillation losses: how far the student's logits are from the teacher's.

Every loss here comes in two forms, as in `keras.losses`:

- a function `fn(teacher_logits, student_logits, ...)` returning one value per
  example (shape `[batch]`), and
- a serializable `keras.losses.Loss` subclass wrapping it, whose `call(y_true,
  y_pred)` takes the teacher's logits as `y_true` and the student's as
  `y_pred`.

Both forms are accepted as `distillation_loss_fn` by `kd_keras.Distiller`.
All math runs in float32, whatever the inputs' dtype (mixed precision), and
uses `log_softmax`, so logits of magnitude 100 or more stay exact.

Keras's own losses are accepted too, and `per_example_fn` feeds each what it
expects (see its table): a loss of probabilities never sees raw logits.
"""

import inspect

import keras
from keras import ops

from kd_keras.errors import UsageError
from kd_keras.number_checks import is_real


def _float32(x):
    x = ops.convert_to_tensor(x)
    return ops.cast(x, "float32") if x.dtype != "float32" else x


def _check_temperature(temperature):
    if is_real(temperature) and not temperature > 0:
        raise UsageError(f"temperature: must be > 0, got {temperature!r}")


@keras.saving.register_keras_serializable(package="kd_keras")
def soft_target_kl(teacher_logits, student_logits, temperature=3.0):
    """Soft-target KL divergence of Hinton et al. (2015), per example.

    Computes `KL(softmax(t / T) || softmax(s / T)) * T**2` with log-softmax in
    float32. The `T**2` factor keeps the gradient magnitude independent of
    `T`. The result is clipped at zero against rounding, so it is never
    negative, and is exactly zero for equal logits.

    Args:
        teacher_logits: tensor `[batch, num_classes]`.
        student_logits: tensor `[batch, num_classes]`.
        temperature: softening temperature `T > 0`.

    Returns:
        A float32 tensor of shape `[batch]`.

    Example:

    >>> import numpy as np
    >>> t = np.array([[2.0, 0.0, -1.0]])
    >>> float(soft_target_kl(t, t)[0])
    0.0
    """
    _check_temperature(temperature)
    t = _float32(teacher_logits) / temperature
    s = _float32(student_logits) / temperature
    log_p = ops.log_softmax(t, axis=-1)
    log_q = ops.log_softmax(s, axis=-1)
    p = ops.exp(log_p)
    kl_far = ops.sum(p * (log_p - log_q), axis=-1)
    # When the two distributions are close, `log_p - log_q` cancels to a few
    # float32 ulps of `log_p` and the sum above loses its relative accuracy.
    # With d = t - s centred so that sum(p * d) = 0, the exact identity
    # KL = -log(sum(q * exp(d))) = -log1p(sum(q * expm1(d))) has an error of
    # order eps * |d| only. It is used where |d| <= 1 (no overflow).
    d = t - s
    d = d - ops.sum(p * d, axis=-1, keepdims=True)
    close = ops.max(ops.abs(d), axis=-1) <= 1.0
    d = ops.clip(d, -1.0, 1.0)  # keeps the unused branch finite
    kl_close = -ops.log1p(ops.sum(ops.exp(log_q) * ops.expm1(d), axis=-1))
    kl = ops.where(close, kl_close, kl_far)
    # Not `maximum`: it keeps a rounding -0.0. NaN stays NaN.
    return ops.where(kl <= 0, 0.0, kl) * (temperature**2)


@keras.saving.register_keras_serializable(package="kd_keras")
def soft_target_cross_entropy(teacher_logits, student_logits, temperature=3.0):
    """Cross-entropy of the student's softened distribution against the
    teacher's, `-sum(softmax(t/T) * log_softmax(s/T)) * T**2`, per example.

    It differs from `soft_target_kl` by the teacher's entropy, a constant for
    the student, so both give the same gradients.

    Args:
        teacher_logits: tensor `[batch, num_classes]`.
        student_logits: tensor `[batch, num_classes]`.
        temperature: softening temperature `T > 0`.

    Returns:
        A float32 tensor of shape `[batch]`.

    Example:

    >>> import numpy as np
    >>> t = np.zeros((1, 4))
    >>> round(float(soft_target_cross_entropy(t, t, temperature=1.0)[0]), 4)
    1.3863
    """
    _check_temperature(temperature)
    p = ops.softmax(_float32(teacher_logits) / temperature, axis=-1)
    log_q = ops.log_softmax(_float32(student_logits) / temperature, axis=-1)
    return -ops.sum(p * log_q, axis=-1) * (temperature**2)


@keras.saving.register_keras_serializable(package="kd_keras")
def logit_mse(teacher_logits, student_logits, temperature=None):
    """Mean squared error between logits (Ba & Caruana, 2014), per example.

    Matches logits directly, so it needs no temperature (the argument is
    accepted and ignored, so every loss shares one signature).

    Args:
        teacher_logits: tensor `[batch, num_classes]`.
        student_logits: tensor `[batch, num_classes]`.
        temperature: ignored.

    Returns:
        A float32 tensor of shape `[batch]`.

    Example:

    >>> import numpy as np
    >>> float(logit_mse(np.array([[1.0, 3.0]]), np.array([[0.0, 0.0]]))[0])
    5.0
    """
    diff = _float32(teacher_logits) - _float32(student_logits)
    return ops.mean(ops.square(diff), axis=-1)


@keras.saving.register_keras_serializable(package="kd_keras")
def cosine_distance(teacher_logits, student_logits, temperature=None):
    """Cosine distance `1 - cos(t, s)` between logit vectors, per example.

    Scale-invariant: it matches the direction of the logits, not their size.
    The temperature is accepted and ignored.

    Args:
        teacher_logits: tensor `[batch, num_classes]`.
        student_logits: tensor `[batch, num_classes]`.
        temperature: ignored.

    Returns:
        A float32 tensor of shape `[batch]`, in `[0, 2]`.

    Example:

    >>> import numpy as np
    >>> float(cosine_distance(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]]))[0])
    0.0
    """
    t = _float32(teacher_logits)
    s = _float32(student_logits)
    eps = 1e-12
    t = t / ops.sqrt(ops.maximum(ops.sum(ops.square(t), -1, keepdims=True), eps))
    s = s / ops.sqrt(ops.maximum(ops.sum(ops.square(s), -1, keepdims=True), eps))
    return 1.0 - ops.sum(t * s, axis=-1)


class DistillationLoss(keras.losses.Loss):
    """Base class of the `Loss` forms: `y_true` is the teacher's logits.

    Args:
        temperature: the softening temperature, or `None` to use the one
            given to `Distiller.compile`.
        reduction: as in `keras.losses.Loss`.
        name: as in `keras.losses.Loss`.
    """

    fn = None
    default_name = None

    def __init__(
        self, temperature=None, reduction="sum_over_batch_size", name=None
    ):
        if temperature is not None:
            _check_temperature(temperature)
            low, high = TEMPERATURE_RANGE
            if is_real(temperature) and not low <= temperature <= high:
                raise UsageError(f"temperature: must be in [{low:g}, {high:g}], got "
                                 f"{temperature!r}")
        super().__init__(reduction=reduction, name=name or self.default_name,
                         dtype="float32")
        self.temperature = temperature

    def per_example(self, teacher_logits, student_logits, temperature=3.0):
        """Unreduced values, with `temperature` used unless one was set."""
        if self.temperature is not None:
            temperature = self.temperature
        return type(self).fn(teacher_logits, student_logits, temperature)

    def call(self, y_true, y_pred):
        """Per-example loss of the teacher's logits `y_true` against the
        student's `y_pred`, at the loss's temperature (1 when it has none)."""
        temperature = 1.0 if self.temperature is None else self.temperature
        return type(self).fn(y_true, y_pred, temperature)

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        config.pop("dtype", None)
        return config


@keras.saving.register_keras_serializable(package="kd_keras")
class SoftTargetKL(DistillationLoss):
    """`Loss` form of `soft_target_kl`.

    Example:

    >>> import numpy as np
    >>> loss = SoftTargetKL(temperature=2.0)
    >>> float(loss(np.zeros((2, 3)), np.zeros((2, 3))))
    0.0
    """

    fn = staticmethod(soft_target_kl)
    default_name = "soft_target_kl"


@keras.saving.register_keras_serializable(package="kd_keras")
class SoftTargetCrossEntropy(DistillationLoss):
    """`Loss` form of `soft_target_cross_entropy`."""

    fn = staticmethod(soft_target_cross_entropy)
    default_name = "soft_target_cross_entropy"


@keras.saving.register_keras_serializable(package="kd_keras")
class LogitMSE(DistillationLoss):
    """`Loss` form of `logit_mse`."""

    fn = staticmethod(logit_mse)
    default_name = "logit_mse"


@keras.saving.register_keras_serializable(package="kd_keras")
class CosineDistance(DistillationLoss):
    """`Loss` form of `cosine_distance`."""

    fn = staticmethod(cosine_distance)
    default_name = "cosine_distance"


_BY_NAME = {
    "soft_target_kl": soft_target_kl,
    "kl": soft_target_kl,
    "soft_target_cross_entropy": soft_target_cross_entropy,
    "logit_mse": logit_mse,
    "mse": logit_mse,
    "cosine": cosine_distance,
    "cosine_distance": cosine_distance,
}


# The canonical loss names (the functions' own), without the short aliases.
NAMES = tuple(dict.fromkeys(fn.__name__ for fn in _BY_NAME.values()))
# The temperatures `Distiller.compile` and the config accept: outside them
# the soft targets are one-hot or uniform in float32, and the T**2 scaling
# of the loss overflows or vanishes.
TEMPERATURE_RANGE = (0.01, 100.0)


def get(identifier):
    """Returns the distillation loss named `identifier` (or `identifier`
    itself when it is already callable).

    Args:
        identifier: `None` (the default, `soft_target_kl`), a name such as
            `"soft_target_kl"`, `"logit_mse"`, `"cosine"` or a Keras loss
            name (`"kl_divergence"`, `"categorical_crossentropy"`), a `Loss`
            instance or a function `fn(teacher_logits, student_logits[,
            temperature])`.

    Returns:
        A callable.

    Raises:
        UsageError: `identifier` names no loss.
    """
    if identifier is None:
        return soft_target_kl
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]
        try:
            return keras.losses.get(identifier)
        except ValueError:
            raise UsageError(
                f"distillation_loss_fn: unknown loss {identifier!r} (known: "
                f"{', '.join(sorted(_BY_NAME))}, or a keras.losses name)"
            ) from None
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if callable(identifier):
        return identifier
    raise UsageError(
        f"distillation_loss_fn: expected a loss name, a keras.losses.Loss or "
        f"a function, got {identifier!r}")


# How `per_example_fn` feeds Keras's losses, by the function they wrap.
_KERAS_ON_PROBABILITIES = (
    "kl_divergence", "categorical_crossentropy",
    "categorical_focal_crossentropy")
_KERAS_ON_LOGITS = (
    "mean_squared_error", "mean_absolute_error", "huber", "log_cosh",
    "cosine_similarity")
_KERAS_REFUSED = {
    "sparse_categorical_crossentropy": "expects integer labels",
    "categorical_generalized_cross_entropy": "expects integer labels",
    "binary_crossentropy": "compares sigmoid (binary) probabilities",
    "binary_focal_crossentropy": "compares sigmoid (binary) probabilities",
    "hinge": "expects -1/1 labels",
    "squared_hinge": "expects -1/1 labels",
    "categorical_hinge": "expects one-hot labels",
    "poisson": "is meant for positive regression targets",
    "mean_squared_logarithmic_error": "is meant for positive regression "
                                      "targets",
    "mean_absolute_percentage_error": "is meant for regression targets away "
                                      "from zero",
    "ctc": "is not a loss between two logit vectors",
    "circle": "is not a loss between two logit vectors",
    "dice": "is not a loss between two logit vectors",
    "tversky": "is not a loss between two logit vectors",
}


def keras_loss_name(fn):
    """The `keras.losses` name of `fn` when it is one of Keras's own
    functions, else None.

    Example:

    >>> import keras
    >>> keras_loss_name(keras.losses.kl_divergence), keras_loss_name(len)
    ('kl_divergence', None)
    """
    name = getattr(fn, "__name__", None)
    return name if getattr(keras.losses, name or "", None) is fn else None


def per_example_fn(loss):
    """Returns how `Distiller` computes `loss` for each example.

    What each kind of loss receives (`t`, `s`: teacher and student logits,
    `T`: the temperature):

    - `kd_keras.losses` functions and `Loss` classes: `t`, `s` and `T`.
    - Keras losses of probabilities (`KLDivergence`,
      `CategoricalCrossentropy`, `CategoricalFocalCrossentropy`, or their
      functions): `softmax(t/T)` and `softmax(s/T)` (`s/T` when
      `from_logits=True`), and the result is multiplied by `T**2` as in
      `soft_target_kl`: `KLDivergence()` gives `soft_target_kl`,
      `CategoricalCrossentropy()` gives `soft_target_cross_entropy`, up to
      Keras's clipping of probabilities at 1e-7 (which saturates the loss
      and zeroes its gradient where the student gives a class the teacher
      likes less than 1e-7).
    - Keras losses of values (`MeanSquaredError`, `MeanAbsoluteError`,
      `Huber`, `LogCosh`, `CosineSimilarity`): `t` and `s`, no temperature
      (as `logit_mse`).
    - Other Keras losses (of labels, binary or positive targets): refused.
    - Any other function or `Loss`: `t` and `s`, plus `temperature=T` when
      the function takes that argument.

    Args:
        loss: what `get` returns.

    Returns:
        A function `fn(teacher_logits, student_logits, temperature)`
        returning one value per example (or more axes, averaged by the
        caller).

    Raises:
        UsageError: `loss` is a Keras loss that cannot compare two logit
            vectors; the message names what to pass instead.

    Example:

    >>> import numpy as np, keras
    >>> fn = per_example_fn(keras.losses.KLDivergence())
    >>> t = np.array([[2.0, 0.0, -1.0]])
    >>> float(fn(t, t, 2.0)[0])
    0.0
    """
    if isinstance(loss, DistillationLoss):
        return loss.per_example
    is_keras_loss = isinstance(loss, keras.losses.Loss)
    name = keras_loss_name(getattr(loss, "fn", None) if is_keras_loss else loss)
    call = loss.call if is_keras_loss else loss
    if name in _KERAS_REFUSED:
        shown = type(loss).__name__ if is_keras_loss else name
        raise UsageError(
            f"distillation_loss_fn: keras.losses.{shown} {_KERAS_REFUSED[name]}"
            ", not teacher logits; pass keras.losses.KLDivergence(), "
            "keras.losses.CategoricalCrossentropy() or 'soft_target_kl'")
    if name in _KERAS_ON_PROBABILITIES:
        from_logits = bool(is_keras_loss and loss.get_config().get(
            "from_logits", False))

        def on_probabilities(teacher_logits, student_logits, temperature):
            p = ops.softmax(_float32(teacher_logits) / temperature, axis=-1)
            s = _float32(student_logits) / temperature
            q = s if from_logits else ops.softmax(s, axis=-1)
            return _float32(call(p, q)) * (temperature**2)

        return on_probabilities
    if name in _KERAS_ON_LOGITS or is_keras_loss or not _takes_temperature(
            loss):
        return lambda teacher_logits, student_logits, temperature: call(
            teacher_logits, student_logits)
    return lambda teacher_logits, student_logits, temperature: loss(
        teacher_logits, student_logits, temperature=temperature)


def _takes_temperature(fn):
    try:
        return "temperature" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["CosineDistance", "DistillationLoss", "LogitMSE", "NAMES", "SoftTargetCrossEntropy",
           "SoftTargetKL", "TEMPERATURE_RANGE", "cosine_distance", "get", "logit_mse",
           "per_example_fn", "soft_target_cross_entropy", "soft_target_kl"]
