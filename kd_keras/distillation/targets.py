"""What a batch's targets hold, and where the teacher's outputs come from.

A batch's `y` is either the labels, or a dict

    {"labels": y,                       # -1 marks an unlabeled example
     "teacher_logits": logits,          # optional: the teacher's logits
     "teacher_features": {key: value}}  # optional: its features, by the
                                        # terms' `teacher_layer`

(what `kd_keras.cache.TeacherCache.as_dataset` yields). Whatever the data
does not carry, the teacher computes, in one forward pass.

Example:

>>> split_targets({"labels": [0, -1], "teacher_logits": [[1.0], [2.0]]})
Targets(labels=[0, -1], teacher_logits=[[1.0], [2.0]], teacher_features=None)
"""

import dataclasses

import tensorflow as tf

from kd_keras.distillation import checks
from kd_keras.errors import UsageError

LABELS_KEY = "labels"
TEACHER_LOGITS_KEY = "teacher_logits"
TEACHER_FEATURES_KEY = "teacher_features"


@dataclasses.dataclass(frozen=True)
class Targets:
    """A batch's targets.

    Attributes:
        labels: the labels (`-1`: unlabeled).
        teacher_logits: the teacher's logits, or `None`.
        teacher_features: `{teacher_layer: tensor}`, or `None`.
    """

    labels: object
    teacher_logits: object = None
    teacher_features: object = None


def split_targets(y):
    """Returns the `Targets` of a batch's `y` (labels, or a dict)."""
    if not isinstance(y, dict):
        return Targets(y)
    if LABELS_KEY not in y:
        raise UsageError(
            f"y: targets given as a dict need the key {LABELS_KEY!r} (and "
            f"optionally {TEACHER_LOGITS_KEY!r}, {TEACHER_FEATURES_KEY!r}), "
            f"got keys {sorted(y)}")
    return Targets(y[LABELS_KEY], y.get(TEACHER_LOGITS_KEY),
                   y.get(TEACHER_FEATURES_KEY))


def batch_teacher_outputs(teacher, features, x, targets, num_classes):
    """Returns `(teacher_logits, teacher_features)`, float32 logits with no
    gradient; the teacher runs at most once.

    Args:
        teacher: the teacher's layer, or `None`.
        features: the Distiller's `kd_keras.features.FeatureSet`, or `None`.
        x: the batch's inputs.
        targets: the batch's `Targets`.
        num_classes: the expected logits width (or `None`).
    """
    logits, found = targets.teacher_logits, {}
    if features is not None:
        computed, found = features.teacher_outputs(x,
                                                   targets.teacher_features)
        logits = computed if logits is None else logits
    if logits is None:
        if teacher is None:
            raise UsageError(
                "teacher: None, so each batch's targets must be a dict "
                f"{{'{LABELS_KEY}': ..., '{TEACHER_LOGITS_KEY}': ...}} "
                "(see kd_keras.cache.TeacherCache.as_dataset)")
        logits = teacher(x, training=False)
    logits = tf.stop_gradient(tf.cast(logits, "float32"))
    checks.check_static_classes(logits, num_classes, "teacher logits")
    return logits, found


__all__ = ["LABELS_KEY", "TEACHER_FEATURES_KEY", "TEACHER_LOGITS_KEY",
           "Targets", "batch_teacher_outputs", "split_targets"]
