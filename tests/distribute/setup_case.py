"""The training case shared by the distributed tests and their workers.

Kept free of pytest so that worker processes can import it by path.
"""

import keras
import numpy as np
import tensorflow as tf

import kd_keras

GLOBAL_BATCH = 16
EPOCHS = 2


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(70, 6)).astype("float32")
    y = rng.integers(0, 4, size=70).astype("int32")
    y[::3] = -1  # A third unlabeled, spread unevenly over replicas.
    w = rng.uniform(0.5, 2.0, size=70).astype("float32")
    return x, y, w


def dataset(batch=GLOBAL_BATCH):
    x, y, w = data()
    return tf.data.Dataset.from_tensor_slices((x, y, w)).batch(batch)


def initial_weights():
    rng = np.random.default_rng(3)
    shapes = [(6, 16), (16,), (16, 4), (4,), (6, 8), (8,), (8, 4), (4,)]
    return [rng.normal(size=s).astype("float32") * 0.5 for s in shapes]


# With features=True: two feature terms (one through a projection, one
# with a scheduled weight) and a scheduled alpha.
FEATURE_KEYS = ("hidden_mse", "logit_cosine", "alpha", "logit_cosine_weight")


def feature_terms():
    return [
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", weight=0.5,
                                     name="hidden_mse"),
        kd_keras.FeatureDistillation(
            "t_logits", "s_logits", loss="cosine", projection=None,
            weight=kd_keras.schedules.Linear(0.2, 1.0), name="logit_cosine"),
    ]


def build_distiller(features=False):
    """Builds and compiles the distiller; call inside a strategy scope."""
    teacher = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(16, activation="relu", name="t_hidden"),
        keras.layers.Dense(4, name="t_logits")])
    student = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh", name="s_hidden"),
        keras.layers.Dense(4, name="s_logits")])
    for v, value in zip(teacher.weights + student.weights, initial_weights()):
        v.assign(value)
    distiller = kd_keras.Distiller(
        teacher=teacher, student=student,
        features=feature_terms() if features else None)
    rng = np.random.default_rng(5)
    for v in [
            w for p in getattr(distiller, "projections", []) for w in p.weights]:
        v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.5),
        metrics=["sparse_categorical_accuracy"],
        alpha=kd_keras.schedules.Cosine(0.6, 0.2) if features else 0.4,
        temperature=2.0)
    return distiller


def train(strategy, features=False, batch=GLOBAL_BATCH):
    """Returns the student's (and projections') weights and the history."""
    with strategy.scope():
        distiller = build_distiller(features)
    history = distiller.fit(dataset(batch), epochs=EPOCHS, verbose=0)
    weights = [v.numpy() for v in distiller.student.weights] + [
        w.numpy() for p in getattr(distiller, "projections", [])
        for w in p.weights]
    return weights, history.history
