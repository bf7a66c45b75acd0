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


def dataset():
    x, y, w = data()
    return tf.data.Dataset.from_tensor_slices((x, y, w)).batch(GLOBAL_BATCH)


def initial_weights():
    rng = np.random.default_rng(3)
    shapes = [(6, 16), (16,), (16, 4), (4,), (6, 8), (8,), (8, 4), (4,)]
    return [rng.normal(size=s).astype("float32") * 0.5 for s in shapes]


def build_distiller():
    """Builds and compiles the distiller; call inside a strategy scope."""
    teacher = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(4)])
    student = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(4)])
    for v, value in zip(teacher.weights + student.weights, initial_weights()):
        v.assign(value)
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.5),
        metrics=["sparse_categorical_accuracy"], alpha=0.4, temperature=2.0)
    return distiller


def train(strategy):
    with strategy.scope():
        distiller = build_distiller()
    history = distiller.fit(dataset(), epochs=EPOCHS, verbose=0)
    weights = [v.numpy() for v in distiller.student.weights]
    return weights, history.history
