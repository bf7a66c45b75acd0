"""`kd_keras.distillation.feature_losses.per_example`: a loss must give one
value per example; one number for the batch is refused, naming the loss."""

import keras
import numpy as np
import pytest

import kd_keras
from kd_keras.errors import UsageError


def _distiller(features=None):
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="t")])
    student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="s")])
    return kd_keras.Distiller(teacher=teacher, student=student, features=features)


X = np.random.default_rng(0).random((16, 4)).astype("float32")
Y = np.array([0, 1, 2, -1] * 4)  # A quarter unlabeled.


def _mean_cross_entropy(labels, logits):
    # The mean over the batch: unlabeled rows (read as class 0) would count.
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True))


@pytest.mark.parametrize("compile_args, what", [
    ({"student_loss_fn": _mean_cross_entropy}, "student_loss_fn"),
    ({"distillation_loss_fn": lambda t, s: keras.ops.mean(keras.ops.square(t - s))},
     "distillation_loss_fn"),
])
def test_a_loss_giving_one_number_for_the_batch_is_refused(compile_args, what):
    distiller = _distiller()
    distiller.compile(optimizer="sgd", **compile_args)
    with pytest.raises(UsageError, match=rf"^{what}: returned one number for the batch"):
        distiller.fit(X, Y, batch_size=8, epochs=1, verbose=0)


def test_a_feature_loss_giving_one_number_is_refused():
    term = kd_keras.FeatureDistillation(
        teacher_layer="t", student_layer="s", name="logit_mse",
        loss=lambda t, s: keras.ops.mean(keras.ops.square(t - s)))
    distiller = _distiller([term])
    distiller.compile(optimizer="sgd")
    with pytest.raises(UsageError, match="returned one number for the batch"):
        distiller.fit(X, Y, batch_size=8, epochs=1, verbose=0)


def test_per_example_values_train_as_before():
    distiller = _distiller()
    distiller.compile(optimizer="sgd", student_loss_fn=lambda y, s: keras.losses.
                      sparse_categorical_crossentropy(y, s, from_logits=True))
    history = distiller.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
