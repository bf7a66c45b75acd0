"""`distill.features` and `distill.schedules`: checked by the objects that
will use them (`kd_keras.FeatureDistillation`, `kd_keras.schedules`), every
error under the full key of the value, e.g. `distill.features[1].weight` or
`distill.schedules.alpha`.

A schedule must keep every value in the range the scheduled quantity
takes: `alpha` in [0, 1], `temperature` in `TEMPERATURE_RANGE`, a feature
term's `weight` >= 0 (the schedules are monotone or piecewise constant, so
their `bounds()` are their endpoints or steps).
"""

import dataclasses

from kd_keras.config.values import check
from kd_keras.number_checks import is_finite
from kd_keras.number_checks import is_int
from kd_keras.errors import ConfigError
from kd_keras.errors import KdKerasError
from kd_keras.errors import one_line

SCHEDULED = ("alpha", "temperature")


def schedule_ranges():
    """`{scheduled name: (low, high)}`; the temperature's range is the
    losses' (imported here, not at module load: the config stays free of
    TensorFlow until it validates)."""
    from kd_keras.distillation.losses import TEMPERATURE_RANGE

    return {"alpha": (0.0, 1.0), "temperature": TEMPERATURE_RANGE}


def _under(key, message, prefix):
    """`message` under `key`: a leading `PREFIX.field` becomes `KEY.field`,
    anything else is put after `KEY: `."""
    if message.startswith(prefix + "."):
        return f"{key}.{message[len(prefix) + 1:]}"
    return message if message.startswith(key) else f"{key}: {message}"


def _check_numbers(value, key):
    """Integers a float cannot hold, anywhere in a schedule mapping."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_numbers(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_numbers(v, f"{key}[{i}]")
    elif is_int(value):
        check(is_finite(value), key, "a finite number", value)


def check_schedule(value, key, low=None, high=None):
    """Checks a number or a schedule mapping and the range of its values.

    Args:
        value: a number or a `kd_keras.schedules` config mapping.
        key: the config key, for messages.
        low, high: the bounds every value must lie in (`None`: unbounded).

    Returns:
        The `kd_keras.schedules.Schedule`.

    Raises:
        ConfigError: naming `key`.
    """
    from kd_keras.distillation import schedules

    check(isinstance(value, dict) or is_finite(value) or is_int(value), key,
          f"a finite number or a schedule mapping (type: {', '.join(schedules.NAMES)})", value)
    if isinstance(value, dict):
        check(all(isinstance(k, str) for k in value), key,
              "a schedule mapping of argument names", value)
        check(isinstance(value.get("type"), str), f"{key}.type",
              f"one of {', '.join(schedules.NAMES)}", value.get("type"))
    _check_numbers(value, key)
    try:
        schedule = schedules.get(value, key)
    except KdKerasError as e:
        raise ConfigError(_under(key, one_line(e), key)) from None
    lowest, highest = schedule.bounds()
    if (low is not None and lowest < low) or (high is not None and highest > high):
        rule = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        where = "" if isinstance(value, (int, float)) else " at every step"
        shown = value if isinstance(value, (int, float)) else schedule
        raise ConfigError(f"{key}: must be {rule}{where}, got {shown!r}")
    return schedule


def validate_feature_terms(d):
    """Checks `distill.features` and `distill.schedules` of a `DistillConfig`.

    Raises:
        ConfigError: naming the key, e.g. `distill.features[0].teacher_layer`.
    """
    from kd_keras.distillation.features import FeatureDistillation

    names = []
    for i, term in enumerate(d.features or ()):
        key = f"distill.features[{i}]"
        for field in ("teacher_layer", "student_layer"):
            check(isinstance(getattr(term, field), str) and getattr(term, field),
                  f"{key}.{field}", "a layer name or path", getattr(term, field))
        check(isinstance(term.loss, str), f"{key}.loss", "a loss name", term.loss)
        check_schedule(term.weight, f"{key}.weight", low=0.0)
        try:
            names.append(FeatureDistillation(**dataclasses.asdict(term)).name)
        except KdKerasError as e:
            raise ConfigError(_under(key, one_line(e), "FeatureDistillation")) from None
    check(len(set(names)) == len(names), "distill.features", "terms with distinct names",
          names)
    for key, value in d.schedules.items():
        check(key in SCHEDULED, f"distill.schedules.{key}", f"one of {', '.join(SCHEDULED)}",
              key)
        check_schedule(value, f"distill.schedules.{key}", *schedule_ranges()[key])


__all__ = ["SCHEDULED", "check_schedule", "schedule_ranges", "validate_feature_terms"]
