"""Acceptance: few labels on real data (scikit-learn digits).

10% of the training labels are kept; the other 90% of the training images
are passed as unlabeled (label -1). The teacher (an ensemble of three small
CNNs with random-shift augmentation) and the student alone see only the 10%;
the distilled student also sees the unlabeled images through the teacher.
Mean of 3 seeds, on a held-out quarter of the data.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import kd_keras

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def cnn_member():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.RandomTranslation(0.125, 0.125, fill_mode="constant"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


def mlp_student():
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])


def accuracy(model, x, y):
    return float((np.argmax(model.predict(x, verbose=0), -1) == y).mean())


def run_seed(seed, x, y):
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y)
    labeled = np.random.default_rng(seed).permutation(len(x_train))
    labeled = labeled[: len(x_train) // 10]
    y_few = np.full(len(y_train), -1, "int32")
    y_few[labeled] = y_train[labeled]

    members = []
    for m in range(3):
        keras.utils.set_random_seed(100 * seed + m)
        member = cnn_member()
        member.compile(keras.optimizers.Adam(3e-3), CE, steps_per_execution=16)
        member.fit(np.tile(x_train[labeled], (8, 1, 1, 1)),
                   np.tile(y_train[labeled], 8), epochs=20, batch_size=64,
                   verbose=0)
        members.append(member)
    inputs = keras.Input((8, 8, 1))
    teacher = keras.Model(
        inputs, keras.layers.Average()([m(inputs) for m in members]))

    keras.utils.set_random_seed(seed)
    alone = mlp_student()
    alone.compile(keras.optimizers.Adam(1e-2), CE, steps_per_execution=16)
    alone.fit(x_train[labeled], y_train[labeled], epochs=100, batch_size=32,
              verbose=0)

    # The teacher is frozen and deterministic at inference, so its logits
    # are computed once (offline distillation) instead of at every step.
    logits = teacher.predict(x_train, batch_size=512, verbose=0)
    keras.utils.set_random_seed(seed)
    student = mlp_student()
    distiller = kd_keras.Distiller(teacher=None, student=student)
    distiller.compile(keras.optimizers.Adam(1e-2), alpha=0.1, temperature=4.0,
                      steps_per_execution=16)
    data = tf.data.Dataset.from_tensor_slices(
        (x_train, {"labels": y_few, "teacher_logits": logits}))
    distiller.fit(data.shuffle(len(x_train), seed=seed).batch(64), epochs=60,
                  verbose=0)
    return (accuracy(teacher, x_test, y_test),
            accuracy(alone, x_test, y_test),
            accuracy(student, x_test, y_test))


@pytest.mark.slow
def test_distillation_with_unlabeled_data_beats_student_alone():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    results = np.array([run_seed(seed, x, y) for seed in range(3)])
    teacher, alone, distilled = results.mean(0)
    print(f"digits, 10% labels, mean of 3 seeds: teacher {teacher:.4f}, "
          f"student alone {alone:.4f}, distilled {distilled:.4f}")
    assert distilled >= alone + 0.03, results
