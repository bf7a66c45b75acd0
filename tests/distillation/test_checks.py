"""Probabilities are never taken for logits: teachers, students and export
inputs that end in a softmax, or whose outputs are probabilities, are refused
(`kd_keras.distillation.checks`)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import distill_helpers
from kd_keras.cli import main
from kd_keras.distillation import checks
from kd_keras.errors import UsageError


def _softmax_models():
    x = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(3, name="logits")(x)
    return {
        "dense": keras.Model(x, keras.layers.Dense(3, activation="softmax", name="p")(x)),
        "layer": keras.Model(x, keras.layers.Softmax(name="p")(hidden)),
        "activation": keras.Model(x, keras.layers.Activation("softmax", name="p")(hidden)),
        "sequential": keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                        keras.layers.Softmax(name="p")]),
        "nested": keras.Sequential([keras.Input((4,)), keras.Sequential(
            [keras.layers.Dense(3, activation="softmax", name="p")])]),
        # The same softmax as TensorFlow or keras.ops spell it.
        "tf.nn": keras.Model(x, keras.layers.Dense(3, activation=tf.nn.softmax, name="p")(x)),
        "tf.nn activation": keras.Model(
            x, keras.layers.Activation(tf.nn.softmax, name="p")(hidden)),
        "ops": keras.Model(x, keras.layers.Activation(keras.ops.softmax, name="p")(hidden)),
        "ops call": keras.Model(x, keras.ops.softmax(hidden)),
    }


@pytest.mark.parametrize("kind", sorted(_softmax_models()))
def test_a_final_softmax_is_found(kind):
    found = checks.final_softmax(_softmax_models()[kind])
    assert found == ("p" if kind != "ops call" else "softmax")


def test_logits_models_pass():
    x = keras.Input((4,))
    assert checks.final_softmax(keras.Model(x, keras.layers.Dense(3)(x))) is None
    relu = keras.Model(x, keras.layers.Dense(3, activation="relu")(x))
    assert checks.final_softmax(relu) is None


def test_probability_rows_are_recognised_against_numpy_softmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(50, 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert checks.looks_like_probabilities(probabilities.astype(np.float32))
    assert not checks.looks_like_probabilities(logits)
    assert not checks.looks_like_probabilities(np.log(probabilities))  # log-probabilities
    assert not checks.looks_like_probabilities(np.abs(logits))  # non-negative, sums != 1


def test_distiller_refuses_a_softmax_teacher_or_student():
    import kd_keras

    models = _softmax_models()
    x = keras.Input((4,))
    logits = keras.Model(x, keras.layers.Dense(3)(x))
    with pytest.raises(UsageError, match=r"^teacher: ends in a softmax \(layer 'p'\)"):
        kd_keras.Distiller(teacher=models["dense"], student=logits)
    with pytest.raises(UsageError, match=r"^student: ends in a softmax"):
        kd_keras.Distiller(teacher=logits, student=models["layer"])


def test_export_refuses_a_softmax_model(tmp_path, capsys):
    path = tmp_path / "probs.keras"
    _softmax_models()["dense"].save(str(path))
    assert main(["export", str(path), str(tmp_path / "out"), "--formats", "onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: ends in a softmax" in err[0], err
    assert sorted(os.listdir(tmp_path)) == ["probs.keras"]


def test_export_refuses_outputs_that_are_probabilities(tmp_path):
    from kd_keras.export import export_model

    x = keras.Input((4,), name="features")

    class Normalise(keras.layers.Layer):  # a softmax that no layer type gives away
        def call(self, z):
            return keras.ops.exp(z) / keras.ops.sum(keras.ops.exp(z), axis=-1, keepdims=True)

    model = keras.Model(x, Normalise()(keras.layers.Dense(3)(x)), name="hidden_softmax")
    with pytest.raises(UsageError, match="model 'hidden_softmax': outputs probabilities"):
        export_model(model, tmp_path / "out", formats=("onnx",), latency_runs=0)
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return distill_helpers.shared_teacher(tmp_path_factory)


def test_distill_refuses_a_softmax_teacher(tmp_path, teacher_path, capsys):
    teacher = keras.saving.load_model(teacher_path, safe_mode=True)
    probs = keras.Sequential([teacher, keras.layers.Softmax(name="probabilities")])
    probs.save(str(tmp_path / "probs.keras"))
    config = distill_helpers.write_config(tmp_path / "c.yaml", str(tmp_path / "probs.keras"),
                                          str(tmp_path / "out"))
    assert main(["distill", config]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    assert "teacher.model:" in err[0] and "ends in a softmax (layer 'probabilities')" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["c.yaml", "probs.keras"]
