"""Distillation losses, the public names of `kd_keras.distillation.losses`.

Each loss is a function `fn(teacher_logits, student_logits, temperature)`
returning one value per example, and a serializable `keras.losses.Loss`
subclass wrapping it; both are accepted as `distillation_loss_fn` by
`kd_keras.Distiller`. `get` finds one by name and `per_example_fn` adapts
Keras's own losses. The implementation lives in the core package,
`kd_keras.distillation`; this module is the public path to it, as
`keras.losses` is to `keras.src.losses`.

Example:

>>> import numpy as np
>>> from kd_keras.losses import soft_target_kl
>>> logits = np.array([[1.0, 2.0, 3.0]], "float32")
>>> float(soft_target_kl(logits, logits, temperature=2.0)[0])
0.0
"""

from kd_keras.distillation.losses import NAMES
from kd_keras.distillation.losses import TEMPERATURE_RANGE
from kd_keras.distillation.losses import CosineDistance
from kd_keras.distillation.losses import DistillationLoss
from kd_keras.distillation.losses import LogitMSE
from kd_keras.distillation.losses import SoftTargetCrossEntropy
from kd_keras.distillation.losses import SoftTargetKL
from kd_keras.distillation.losses import cosine_distance
from kd_keras.distillation.losses import get
from kd_keras.distillation.losses import logit_mse
from kd_keras.distillation.losses import per_example_fn
from kd_keras.distillation.losses import soft_target_cross_entropy
from kd_keras.distillation.losses import soft_target_kl

__all__ = [
    "CosineDistance",
    "DistillationLoss",
    "LogitMSE",
    "NAMES",
    "SoftTargetCrossEntropy",
    "SoftTargetKL",
    "TEMPERATURE_RANGE",
    "cosine_distance",
    "get",
    "logit_mse",
    "per_example_fn",
    "soft_target_cross_entropy",
    "soft_target_kl",
]
