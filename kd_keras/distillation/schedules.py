"""Schedules: a value that changes over training progress.

`Distiller.compile(alpha=..., temperature=...)` and each
`FeatureDistillation(weight=...)` take a number or a `Schedule`. A schedule
maps the progress of the current `fit` call, `p` in `[0, 1]` (the optimizer
steps taken by `fit`, over the steps it will take; `initial_epoch` counts as
steps already taken), to a value. `Distiller` evaluates it in the graph at
every step, and logs the value a scheduled quantity had at the end of each
epoch under its name in `history.history`.

- `Constant(value)`
- `Linear(start, end)`: `start + (end - start) * p`
- `Cosine(start, end)`: `start + (end - start) * (1 - cos(pi * p)) / 2`
- `Step(values, boundaries)`: `values[i]` while `boundaries[i-1] <= p <
  boundaries[i]`

`get` also reads the config form, a dict such as `{"type": "linear",
"start": 0.9, "end": 0.1}`.

Example:

>>> s = get({"type": "cosine", "start": 1.0, "end": 0.0})
>>> [round(float(s(p)), 3) for p in (0.0, 0.5, 1.0)]
[1.0, 0.5, 0.0]
>>> float(Step([4.0, 2.0, 1.0], [0.3, 0.6])(0.5))
2.0
"""

import math

import keras
from keras import ops

from kd_keras.errors import UsageError
from kd_keras.number_checks import is_finite
from kd_keras.number_checks import is_real


class Schedule:
    """Base class: `schedule(progress)` returns a float32 scalar tensor."""

    type_name = None

    def __call__(self, progress):
        raise NotImplementedError

    def bounds(self):
        """Returns `(lowest, highest)` value over `p` in `[0, 1]`."""
        raise NotImplementedError

    @property
    def is_constant(self):
        """Whether the value never changes over training."""
        low, high = self.bounds()
        return low == high

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and (
            self.get_config() == other.get_config())

    def __hash__(self):
        return hash((type(self).__name__, repr(self.get_config())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _number(value, what):
    if not is_finite(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise UsageError(f"{what}: expected a finite number, got {shown}")
    return float(value)


def _progress(progress):
    return ops.clip(ops.cast(progress, "float32"), 0.0, 1.0)


@keras.saving.register_keras_serializable(package="kd_keras")
class Constant(Schedule):
    """The same value at every step.

    Args:
        value: the value.
    """

    type_name = "constant"

    def __init__(self, value):
        self.value = _number(value, "constant: value")

    def __call__(self, progress):
        return ops.cast(self.value, "float32") + 0.0 * _progress(progress)

    def bounds(self):
        """Returns `(lowest, highest)` value over `p` in `[0, 1]`."""
        return self.value, self.value

    def get_config(self):
        return {"value": self.value}


@keras.saving.register_keras_serializable(package="kd_keras")
class Linear(Schedule):
    """From `start` at `p = 0` to `end` at `p = 1`, linearly.

    Args:
        start: the first value.
        end: the last value.
    """

    type_name = "linear"

    def __init__(self, start, end):
        self.start = _number(start, "linear: start")
        self.end = _number(end, "linear: end")

    def __call__(self, progress):
        return self.start + (self.end - self.start) * _progress(progress)

    def bounds(self):
        """Returns `(lowest, highest)` value over `p` in `[0, 1]`."""
        return min(self.start, self.end), max(self.start, self.end)

    def get_config(self):
        return {"start": self.start, "end": self.end}


@keras.saving.register_keras_serializable(package="kd_keras")
class Cosine(Linear):
    """From `start` to `end` along half a cosine (cosine annealing).

    Args:
        start: the first value.
        end: the last value.
    """

    type_name = "cosine"

    def __call__(self, progress):
        shape = (1.0 - ops.cos(math.pi * _progress(progress))) / 2.0
        return self.start + (self.end - self.start) * shape


@keras.saving.register_keras_serializable(package="kd_keras")
class Step(Schedule):
    """Piecewise constant: `values[i]` from `boundaries[i-1]` (inclusive) to
    `boundaries[i]`.

    Args:
        values: `n + 1` values.
        boundaries: `n` increasing progress fractions in `(0, 1)`.
    """

    type_name = "step"

    def __init__(self, values, boundaries):
        values = [_number(v, "step: values") for v in _sequence(
            values, "step: values")]
        boundaries = [_number(b, "step: boundaries") for b in _sequence(
            boundaries, "step: boundaries")]
        if len(values) != len(boundaries) + 1:
            raise UsageError(
                f"step: values: expected {len(boundaries) + 1} values for "
                f"{len(boundaries)} boundaries, got {len(values)}")
        if any(not 0.0 < b < 1.0 for b in boundaries) or any(
                a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise UsageError(
                "step: boundaries: expected increasing fractions of training "
                f"in (0, 1), got {boundaries}")
        self.values = values
        self.boundaries = boundaries

    def __call__(self, progress):
        p = _progress(progress)
        value = ops.cast(self.values[0], "float32")
        for boundary, later in zip(self.boundaries, self.values[1:]):
            value = ops.where(p >= boundary, later, value)
        return value

    def bounds(self):
        """Returns `(lowest, highest)` value over `p` in `[0, 1]`."""
        return min(self.values), max(self.values)

    def get_config(self):
        return {"values": list(self.values),
                "boundaries": list(self.boundaries)}


def _sequence(value, what):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise UsageError(f"{what}: expected a list of numbers, got {value!r}")
    return list(value)


SCHEDULES = {cls.type_name: cls for cls in (Constant, Linear, Cosine, Step)}
NAMES = tuple(sorted(SCHEDULES))


def get(identifier, what="schedule"):
    """Returns the `Schedule` that `identifier` describes.

    Args:
        identifier: a number (a `Constant`), a `Schedule`, or a dict with a
            `"type"` (one of `NAMES`) and that schedule's arguments.
        what: the argument's name, for error messages (e.g. `"alpha"`).

    Returns:
        A `Schedule`.

    Raises:
        UsageError: naming `what` and the bad value.

    Example:

    >>> get(0.5)
    Constant(value=0.5)
    >>> get({"type": "linear", "start": 1, "end": 0})
    Linear(start=1.0, end=0.0)
    """
    if isinstance(identifier, Schedule):
        return identifier
    if is_real(identifier):
        return Constant(_number(identifier, what))
    if isinstance(identifier, dict):
        spec = dict(identifier)
        kind = spec.pop("type", None)
        if not isinstance(kind, str) or kind not in SCHEDULES:
            raise UsageError(
                f"{what}: unknown schedule {kind!r} (known: "
                f"{', '.join(NAMES)})")
        try:
            return SCHEDULES[kind](**spec)
        except TypeError as e:
            raise UsageError(f"{what}: bad arguments for a {kind} schedule "
                             f"{sorted(map(str, spec))}: {e}") from None
        except UsageError as e:
            raise UsageError(f"{what}: {e}") from None
    if isinstance(identifier, str):
        raise UsageError(
            f"{what}: unknown schedule {identifier!r} (known: a number, or "
            f"a dict with type {', '.join(NAMES)})")
    raise UsageError(
        f"{what}: expected a number or a kd_keras.schedules.Schedule, got "
        f"{identifier!r}")


def check_range(schedule, what, low=None, high=None, low_open=False):
    """Raises a `UsageError` unless every value of `schedule` lies in the
    range.

    Args:
        schedule: a `Schedule`.
        what: the argument's name.
        low, high: the bounds (`None`: unbounded).
        low_open: whether `low` itself is excluded.
    """
    lowest, highest = schedule.bounds()
    shown = lowest if lowest == highest else schedule
    if low is not None and (lowest < low or (low_open and lowest <= low)):
        sign = ">" if low_open else ">="
        raise UsageError(f"{what}: must be {sign} {low:g}, got {shown!r}")
    if high is not None and highest > high:
        raise UsageError(f"{what}: must be <= {high:g}, got {shown!r}")


def number_or_schedule(value, what, rule, **bounds):
    """Checks a value that may be scheduled.

    Args:
        value: a number, a `Schedule` or a schedule's config dict.
        what: the argument's name.
        rule: how the message states the range, e.g. `"must be > 0"`.
        **bounds: `check_range` arguments.

    Returns:
        A float for a number, else a `Schedule`; every value in range.

    Example:

    >>> number_or_schedule(0.5, "alpha", "must be in [0, 1]", low=0, high=1)
    0.5
    """
    if is_real(value):
        try:
            check_range(Constant(value), what, **bounds)
        except UsageError:
            raise UsageError(f"{what}: {rule}, got {value!r}") from None
        return float(value)
    if not isinstance(value, (Schedule, dict)):
        raise UsageError(f"{what}: {rule}, got {value!r}")
    schedule = get(value, what)
    check_range(schedule, what, **bounds)
    return schedule


__all__ = ["Constant", "Cosine", "Linear", "NAMES", "Schedule", "Step",
           "check_range", "get", "number_or_schedule"]
