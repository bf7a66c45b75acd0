"""The distillation core: `Distiller`, its losses, feature terms and schedules.

Mirrors `keras.distillation`: a `Distiller` is a `keras.Model` that trains a
student from a teacher's logits (online, or from the batches of a cache),
plus any `FeatureDistillation` terms between intermediate outputs, weighted
by numbers or `schedules`. The core imports Keras and TensorFlow only:
nothing from the cache, the teachers, export, the CLI pipeline or Ray.

Modules: `distiller` (`Distiller`), `losses` (logit losses), `features`
(`FeatureDistillation` and the set of terms a Distiller trains),
`feature_views` (reading intermediate outputs in the same forward pass),
`feature_losses` (per-example feature losses), `transformer_terms` (terms
for BERT-style encoders), `schedules` (weights that change during
training), `training_progress` (the step and epoch schedules read),
`targets` (what a batch carries besides the inputs), `checks` (logits and
finite-loss checks) and `replicas` (sums over `tf.distribute` replicas).

Example:

>>> import keras
>>> from kd_keras.distillation import Distiller
>>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> distiller = Distiller(teacher=teacher, student=student)
>>> distiller.compile(optimizer="sgd", alpha=0.1, temperature=2.0)
>>> isinstance(distiller, keras.Model)
True
"""

from kd_keras.distillation import feature_losses
from kd_keras.distillation import features
from kd_keras.distillation import losses
from kd_keras.distillation import schedules
from kd_keras.distillation import transformer_terms
from kd_keras.distillation.distiller import Distiller
from kd_keras.distillation.features import FeatureDistillation

__all__ = ["Distiller", "FeatureDistillation", "feature_losses", "features", "losses",
           "schedules", "transformer_terms"]
