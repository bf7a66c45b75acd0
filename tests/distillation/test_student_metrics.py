"""`Distiller.compile(metrics=...)` reads its metrics as metrics of logits
(`kd_keras.distillation.student_metrics`)."""

import keras
import numpy as np
import pytest

import kd_keras
from kd_keras.errors import UsageError


def _distiller():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    return kd_keras.Distiller(teacher, student), student


@pytest.mark.parametrize("metric", ["sparse_categorical_crossentropy",
                                    keras.metrics.sparse_categorical_crossentropy])
def test_the_cross_entropy_metric_by_name_is_that_of_the_logits(metric):
    # Keras's function read the logits as probabilities: 13.2 for 4.1.
    distiller, student = _distiller()
    distiller.compile(optimizer="sgd", metrics=[metric, ["sparse_categorical_accuracy"]])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype("float32")
    y = np.array([0, 1, 2, -1] * 3)
    got = distiller.evaluate(x, y, return_dict=True, verbose=0)
    # NumPy, float64, on the labeled rows (metrics skip the unlabeled).
    logits = np.asarray(student(x), np.float64)[y >= 0]
    labels = y[y >= 0]
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    expected = -log_p[np.arange(len(labels)), labels].mean()
    assert got["sparse_categorical_crossentropy"] == pytest.approx(expected, rel=1e-5)
    assert got["sparse_categorical_accuracy"] == pytest.approx(
        np.mean(logits.argmax(-1) == labels))


@pytest.mark.parametrize("metrics, message", [
    ("accuracy", "metrics: expected a list of metrics (or a dict of lists), e.g. "
                 "['accuracy'], got 'accuracy'"),
    ([keras.metrics.SparseCategoricalCrossentropy()],
     "metrics: SparseCategoricalCrossentropy(from_logits=False) reads probabilities, but "
     "the student gives logits; pass from_logits=True"),
    ([keras.metrics.categorical_crossentropy],
     "metrics: keras.metrics.categorical_crossentropy reads probabilities, but the student "
     "gives logits; pass a metric object with from_logits=True"),
])
def test_metrics_that_would_mislead_are_one_line(metrics, message):
    distiller, _ = _distiller()
    with pytest.raises(UsageError) as info:
        distiller.compile(optimizer="sgd", metrics=metrics)
    assert str(info.value) == message


def test_a_distiller_with_the_logits_cross_entropy_saves_and_loads(tmp_path):
    distiller, _ = _distiller()
    distiller.compile(optimizer="sgd", metrics=["sparse_categorical_crossentropy"])
    x, y = np.ones((4, 3), "float32"), np.array([0, 1, 2, 0])
    before = distiller.evaluate(x, y, return_dict=True, verbose=0)
    distiller.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    after = loaded.evaluate(x, y, return_dict=True, verbose=0)
    assert after["sparse_categorical_crossentropy"] == pytest.approx(
        before["sparse_categorical_crossentropy"], rel=1e-6)
